"""Text for readers outside the desk (the public status page, knowledge-base drafts).

Why in the domain: the status page (``dashboard.public_status``) and the hand-over drafts
(``handover.kb``) must apply the same rule: mail addresses, phone numbers and the names of the
people involved (reporters, the team) never reach a page that everyone may read, whatever the
text was meant for.  Team-written text (``#update``) is meant for the public, but a pasted
address or a reporter's name in it is a slip, and one slip on a page for all users is a leak.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from core.untrusted_text import storable_text
from tickets.incidents import significant_terms
from tickets.models import Incident

# Anything shaped like an address, also without a dot in the domain (``maria@localhost``).
_EMAIL = re.compile(r"[^\s@<>()\[\],;:\"']{1,200}@[^\s@<>()\[\],;:\"']{1,255}")
_DATE_OR_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}$|^\d{1,2}[.:]\d{2}$|^\d{1,2}\.\d{1,2}\.\d{2,4}$")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\d[\d ()./-]{5,}\d(?!\w)")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
MIN_NAME = 3  # shorter "names" (initials) would blank out ordinary words
MAX_TITLE_WORDS = 3
SUBJECT_CHARS = 2000  # of each report's subject read for the title words
_NAME_PART = re.compile(r"[^\W_]+")  # a name is matched by its words: "Jean-Pierre" by jean and pierre
_NAME_RUN = re.compile(r"\[name\](?:[ \t.'’-]{1,3}\[name\])+")
TITLE_REPORTS = 200  # the first reports an incident's title is made of: enough to agree on its words
_WORD = re.compile(r"[^\W\d_]{3,}|\d{3,}")  # the words tickets.incidents.significant_terms counts


def redact(text: str, names: Iterable[str] = ()) -> str:
    """*text* with mail addresses, phone numbers and the given *names* replaced by placeholders."""
    text = _EMAIL.sub("[email]", text)

    def phone(match: re.Match[str]) -> str:
        value = match.group(0)
        if sum(ch.isdigit() for ch in value) < 7 or _DATE_OR_TIME.match(value.strip()):
            return value
        return "[phone]"

    text = _PHONE.sub(phone, text)
    # One pass over the text's words, each looked up in a set: an incident may have thousands of
    # reporters, and a regex per name made one status page or acknowledgement cost seconds.
    parts = {part.lower() for name in names for part in _NAME_PART.findall(name or "") if len(part) >= MIN_NAME}
    if parts:
        text = _NAME_PART.sub(lambda m: "[name]" if m.group().lower() in parts else m.group(), text)
        text = _NAME_RUN.sub("[name]", text)  # "Maria Keller" is one name, not two
    return text


def names_of(people: Iterable[tuple[str, str]]) -> set[str]:
    """The words that name the (display name, address) *people*: the full name, each part of it and
    the address's local part and its parts ("maria.keller" -> maria, keller)."""
    names: set[str] = set()
    for display, address in people:
        for value in (display or "", (address or "").split("@")[0]):
            value = value.strip()
            if value:
                names.add(value)
                names.update(part for part in re.split(r"[\s._+-]+", value) if part)
    return {n for n in names if len(n) >= MIN_NAME}


def public_line(text: str, names: Iterable[str] = (), limit: int = 600) -> str:
    """One line of text safe for a public page: storable (no NUL, no lone surrogates), control
    characters and line breaks as spaces, redacted, at most *limit* characters."""
    text = storable_text(text[: limit * 8])
    text = " ".join(_CONTROLS.sub(" ", text).split())
    text = redact(text, names)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def neutral_title(subjects: Iterable[str], names: Iterable[str], area: str) -> str:
    """An incident's title for readers outside the desk: the words most of its reports' *subjects* share
    (for a single report: its subject's words), in the spelling first seen ("CRM down"), the *names* of
    the people involved left out, with the owner *area*; when no word is left, "Problem in <area>".

    Why not the stored title: that is the first reporter's subject ("Maria's CRM is down"), written
    for the desk, not for everyone."""
    lowered = {n.lower() for n in names}
    counts: dict[str, int] = {}  # in order of first appearance: the first report's words win a tie
    spelling: dict[str, str] = {}
    reports = 0
    for subject in subjects:
        reports += 1
        subject = (subject or "")[:SUBJECT_CHARS]
        for match in _WORD.finditer(subject):
            spelling.setdefault(match.group().lower(), match.group())
        for word in significant_terms(subject):
            counts[word] = counts.get(word, 0) + 1
    order = {word: i for i, word in enumerate(counts)}
    needed = 2 if reports > 1 else 1

    def personal(word: str) -> bool:
        return word in lowered or word.split("'")[0].split("’")[0] in lowered

    ranked = sorted((w for w, n in counts.items() if n >= needed and not personal(w)),
                    key=lambda w: (-counts[w], order[w]))
    words = [public_line(spelling.get(w, w), lowered, limit=40) for w in ranked[:MAX_TITLE_WORDS]]
    words = [w for w in words if w and "[" not in w]
    if not words:
        return f"Problem in {area}"
    title = " ".join(words)
    return f"{title[0].upper()}{title[1:]} ({area})"



def incident_names(incident: Incident, team: Iterable[tuple[str, str]]) -> set[str]:
    """The names to keep out of text about *incident* for readers outside the desk: those of its
    reporters and of the *team* (display name, address pairs)."""
    return names_of({*team, *((t.reporter_name, t.reporter) for t in incident.tickets)})


def incident_title(incident: Incident, names: Iterable[str], area: str) -> str:
    """*incident*'s title as shown outside the desk (the status page, and each later reporter's
    "known issue" acknowledgement): ``neutral_title`` over its first ``TITLE_REPORTS`` reports'
    subjects, without *names* (bounded: every later report's acknowledgement shows it)."""
    first = sorted(incident.tickets, key=lambda t: (t.created_at, t.id or 0))[:TITLE_REPORTS]
    return neutral_title([t.subject for t in first], names, area)
