"""Read team reply commands (``#ack``, ``#resolve [text]`` ...) from the top of a reply.

Why a parser of its own, separate from acting: what a reply *says* must be decided the
same way whether or not the sender may act on it, so a refused reply can tell its
sender exactly which lines were read as commands.  Rules (DESIGN "Reply commands"):

* commands are lines at the top of the reply (after blank lines), before any other
  text; the quoted history is already gone (``ParsedMessage.body``);
* ``#decision`` (project managers) records the exit decision; a reply carrying it is internal as a
  whole, like ``#note``: its text is the decision's comment, never an answer to the reporter;
* ``#name [argument]``, case-insensitive, several per reply, blank lines between them;
* the first line that is not a command starts the free text (a public answer);
* a ``#`` followed by a space or a digit is text ("# heading", "#1 priority"), not a command.

Each command is a tiny class with ``name``, ``description``, ``usage`` and one
``check()`` of its argument, registered in one explicit table that refuses duplicate
names.  A reply with any problem (unknown command, bad argument, contradiction) is
refused as a whole: a typo must not let half an intention through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from config import ROLES, SEVERITIES
from core.registry import Registry
from tickets.decisions import DecisionProblem, parse_decision

_COMMAND_LINE = re.compile(r"^#(?P<name>[A-Za-z][A-Za-z_-]*)(?:[ \t:]+(?P<arg>.*))?$")
MAX_COMMANDS = 20


@dataclass(frozen=True)
class Command:
    name: str  # lower-case, registered name
    arg: str  # normalized argument ("P2", "crm_admin", "ada@example.com", free text), "" when none
    line: str  # the line as written, for confirmations


@dataclass(frozen=True)
class Problem:
    line: str
    reason: str


@dataclass(frozen=True)
class ReplyCommands:
    commands: tuple[Command, ...]
    problems: tuple[Problem, ...]
    text: str  # what follows the commands: a public answer (or the text of a bare #note)

    @property
    def ok(self) -> bool:
        return not self.problems

    def named(self, name: str) -> Command | None:
        return next((c for c in self.commands if c.name == name), None)


class CommandSyntax:
    """One reply command: its name, what it does, and how its argument is checked."""

    name = ""
    description = ""
    usage = ""
    repeatable = False

    def check(self, arg: str) -> tuple[str, str | None]:
        """Return (normalized argument, problem or None)."""
        return arg.strip(), None


class Ack(CommandSyntax):
    name = "ack"
    description = "acknowledge the ticket and take it (assignee = you)"
    usage = "#ack"


class Resolve(CommandSyntax):
    name = "resolve"
    description = "resolve the ticket; the reporter gets the text (and any text below)"
    usage = "#resolve [resolution text]"


class Severity(CommandSyntax):
    name = "severity"
    description = "change the severity (due time recomputed); the same severity confirms an uncertain verdict"
    usage = "#severity P1|P2|P3|P4"

    def check(self, arg: str) -> tuple[str, str | None]:
        token = arg.strip().split()[0].upper() if arg.strip() else ""
        if token in ("1", "2", "3", "4"):
            token = f"P{token}"
        if token not in SEVERITIES:
            got = f", got {arg.strip()!r}" if arg.strip() else ""
            return token, f"needs one of {', '.join(SEVERITIES)}{got}"
        return token, None


class Assign(CommandSyntax):
    name = "assign"
    description = f"hand the ticket to a role ({', '.join(ROLES)}) or a team member; they are notified"
    usage = "#assign <role>|<email>"

    def check(self, arg: str) -> tuple[str, str | None]:
        value = arg.strip().strip("<>").strip()
        if not value:
            return "", "needs a role or a team member's email"
        if "@" in value:
            return value.lower(), None
        role = re.sub(r"[\s-]+", "_", value.lower())
        aliases = {"admin": "crm_admin", "ba": "business_analyst", "analyst": "business_analyst",
                   "consultant": "technical_consultant", "pm": "project_manager"}
        role = aliases.get(role, role)
        if role not in ROLES:
            return role, f"unknown role {value!r}; use one of {', '.join(ROLES)} or a team member's email"
        return role, None


class Wait(CommandSyntax):
    name = "wait"
    description = "waiting on the reporter: pauses the SLA clock until the reporter replies"
    usage = "#wait"


class Note(CommandSyntax):
    name = "note"
    description = "internal note; a reply with #note sends nothing to the reporter"
    usage = "#note <text>"
    repeatable = True


_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}")


class Cc(CommandSyntax):
    name = "cc"
    description = "copy someone on every answer from now on (add), or stop copying them (remove)"
    usage = "#cc add|remove <email>"
    repeatable = True

    def check(self, arg: str) -> tuple[str, str | None]:
        verb, _, rest = arg.strip().partition(" ")
        verb, address = verb.lower(), rest.strip().strip("<>").strip().lower()
        if verb not in ("add", "remove"):
            return "", "needs add or remove, then one email address: #cc add name@example.com"
        if not _ADDRESS.fullmatch(address):
            return "", f"#cc {verb} needs one plain email address (name@example.com)"
        return f"{verb} {address}", None


class Decision(CommandSyntax):
    name = "decision"
    description = "project managers: record the exit decision (conditional: the conditions on the line or below)"
    usage = "#decision go|conditional|no-go [text]"

    def check(self, arg: str) -> tuple[str, str | None]:
        try:
            parsed = parse_decision(arg, need_conditions=False)  # conditions may follow below the line
        except DecisionProblem as problem:
            return arg.strip()[:80], str(problem)
        return f"{parsed.decision} {parsed.text}".strip(), None


_TICKET_KEY = re.compile(r"[A-Z][A-Z0-9]{0,15}-\d{1,12}")


class Link(CommandSyntax):
    name = "link"
    description = "this ticket reports the same problem as HC-n: join HC-n's incident (no page, one resolution)"
    usage = "#link HC-n"

    def check(self, arg: str) -> tuple[str, str | None]:
        key = arg.strip().strip("[]<>").upper()
        if not _TICKET_KEY.fullmatch(key):
            return key, "needs the key of the ticket whose incident this one joins, like HC-12"
        return key, None


class Merge(Link):
    name = "merge"
    description = "the same as #link HC-n (for those who say merge)"
    usage = "#merge HC-n"


class Unlink(CommandSyntax):
    name = "unlink"
    description = "take this ticket out of its incident (a wrong link); it gets its own ladder again"
    usage = "#unlink"


class Update(CommandSyntax):
    name = "update"
    description = "incident status/ETA: later reporters get it in their \"known issue\" mail (not sent now)"
    usage = "#update <text>"


class CommandTable(Registry[CommandSyntax]):
    """The explicit table of reply commands; refuses two commands with one name."""

    def __init__(self, commands: Iterable[CommandSyntax]) -> None:
        super().__init__("reply command", commands)

    def help_lines(self) -> list[str]:
        return [f"{c.usage:<28} {c.description}" for c in self]


COMMANDS = CommandTable((Ack(), Resolve(), Severity(), Assign(), Wait(), Note(), Cc(), Decision(), Link(), Merge(),
                         Unlink(), Update()))

# Pairs that cannot be meant together in one reply.
_CONFLICTS = (("resolve", "wait"), ("link", "unlink"), ("merge", "unlink"), ("link", "merge"))


def parse_reply_commands(body: str, table: CommandTable = COMMANDS) -> ReplyCommands:
    """Split *body* (quote-stripped) into the commands at its top and the free text after them."""
    lines = body.replace("\r\n", "\n").split("\n")
    commands: list[Command] = []
    problems: list[Problem] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].strip().lstrip("\ufeff\u200b")
        if not stripped:
            index += 1
            continue
        match = _COMMAND_LINE.match(stripped)
        if match is None:
            break
        index += 1
        name, arg = match["name"].lower(), (match["arg"] or "").strip()
        syntax = table.get(name)
        if syntax is None:
            problems.append(Problem(stripped, f"unknown command #{name}; known: "
                                              f"{', '.join('#' + n for n in table.names())}"))
            continue
        value, problem = syntax.check(arg)
        if problem is not None:
            problems.append(Problem(stripped, f"#{name} {problem}"))
            continue
        if not syntax.repeatable and any(c.name == name for c in commands):
            problems.append(Problem(stripped, f"#{name} given twice; give it once"))
            continue
        commands.append(Command(name, value, stripped))
        if len(commands) > MAX_COMMANDS:
            problems.append(Problem(stripped, f"more than {MAX_COMMANDS} commands in one reply"))
            break
    text = "\n".join(lines[index:]).strip()
    names = {c.name for c in commands}
    for first, second in _CONFLICTS:
        if first in names and second in names:
            problems.append(Problem(f"#{first} + #{second}", f"#{first} and #{second} contradict each other; "
                                                             "send one of them"))
    update = next((c for c in commands if c.name == "update"), None)
    if update is not None and not update.arg and not text:
        problems.append(Problem(update.line, "#update needs text (on its line or below it)"))
    note = next((c for c in commands if c.name == "note"), None)
    if note is not None and not any(c.arg for c in commands if c.name == "note") and not text:
        problems.append(Problem(note.line, "#note needs text (on its line or below it)"))
    return ReplyCommands(tuple(commands), tuple(problems), text)
