"""``hypercare rules suggest``: concrete rule edits proposed from the team's corrections.

Why suggestions and not self-learning: a rule file is read by people who must be able to say why
a mail was paged; a model that changed itself would break that.  So the corrections kept by
``tickets.corrections`` are turned into [[rule]] tables a person can read, check with
``rules check`` and paste into the site rules file ([rules] file), or ignore:

- **a rule that misfired**: it decided the severity of tickets the team then changed; when most of
  its verdicts were changed, switch it off (``enabled = false``), else cap the words that misled it
  (``severity_ceiling``);
- **keywords to add**: words shared by at least ``min_support`` mails the team raised to the same
  severity (or handed to the same role) and rare in the other tickets become a new rule.

Words are the classifier's own tokens (normalised, accent-free), so a suggested keyword matches
exactly what was in the mails; words found in many tickets (greetings, "the", "bitte") are
dropped by their document frequency instead of by a stop-word list.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from classifier.engine import Classifier
from classifier.text import tokenize
from config import SEVERITIES

MIN_WORD = 4  # shorter tokens are mostly function words or numbers
MAX_COMMON = 0.2  # a word in more than this share of all tickets says nothing about one kind of mail
DISABLE_RATE = 0.5  # a rule whose verdicts were changed this often is better switched off ...
MIN_FIRED_TO_DISABLE = 5  # ... once it has decided enough tickets to tell
MAX_KEYWORDS = 8
MAX_TICKETS = 5000  # newest tickets read for word frequencies
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class Suggestion:
    title: str  # one line: what to change and why
    tickets: list[str]  # the corrected tickets it rests on
    toml: str  # the [[rule]] table to paste into the site rules file

    def render(self) -> str:
        return f"# {self.title}\n# based on: {', '.join(self.tickets)}\n{self.toml}"


@dataclass
class _Correction:
    key: str
    kind: str
    original: str
    final: str
    evidence: dict[str, Any]
    words: set[str] = field(default_factory=set)


def suggest(session: Session, classifier: Classifier, min_support: int = 2) -> list[Suggestion]:
    """Suggestions from every kept correction (the last one per ticket and kind counts)."""
    corrections = _corrections(session)
    if not corrections:
        return []
    frequency, total = _document_frequency(session)
    known = {" ".join(words) for words in classifier.ruleset.builder.matcher._ids}
    out = _misfires(session, corrections, min_support)
    out += _new_keywords(corrections, frequency, total, known, min_support)
    return out


def format_suggestions(suggestions: list[Suggestion], corrections: int) -> str:
    if not suggestions:
        return (f"{corrections} corrections kept; no suggestion yet (a suggestion needs the same change "
                "on at least --min-support tickets)")
    head = (f"# {len(suggestions)} suggestions from {corrections} team corrections. Review each, then paste the "
            "ones you accept into the site rules file ([rules] file) and run 'hypercare rules check'.")
    return "\n\n".join([head] + [s.render() for s in suggestions])


def count_corrections(session: Session) -> int:
    from tickets.models import Correction

    return len(session.scalars(select(Correction.id)).all())


def _corrections(session: Session) -> list[_Correction]:
    from tickets.models import Correction, Ticket

    latest: dict[tuple[int, str], tuple[Correction, str]] = {}
    query = select(Correction, Ticket.key).join(Ticket, Ticket.id == Correction.ticket_id).order_by(Correction.id)
    for row, key in session.execute(query):
        latest[(row.ticket_id, row.kind)] = (row, key)
    found = []
    for row, key in latest.values():
        original = row.original or row.old
        if original == row.new:
            continue  # changed and changed back: nothing to learn
        evidence = row.evidence if isinstance(row.evidence, dict) else {}
        words = _words(f"{evidence.get('subject') or ''}\n{evidence.get('text') or ''}")
        found.append(_Correction(key, row.kind, original, row.new, evidence, words))
    return found


def _words(text: str) -> set[str]:
    """Distinct words and two-word phrases of a mail, as the classifier tokenises them."""
    tokens = tokenize(text[:20_000])
    words = {t for t in tokens if len(t) >= MIN_WORD and not t.isdigit()}
    pairs = {f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)
             if len(a) >= MIN_WORD and len(b) >= MIN_WORD and not (a.isdigit() or b.isdigit())}
    return words | pairs


def _document_frequency(session: Session) -> tuple[Counter[str], int]:
    """In how many tickets (their first inbound mail) each word occurs, newest tickets first."""
    from tickets.models import Message

    first = (select(Message.ticket_id, Message.subject, Message.body)
             .where(Message.direction == "in", Message.ticket_id.is_not(None))
             .order_by(Message.ticket_id.desc(), Message.id))
    seen: set[int] = set()
    frequency: Counter[str] = Counter()
    for ticket_id, subject, body in session.execute(first):
        if ticket_id in seen:
            continue
        seen.add(ticket_id)
        frequency.update(_words(f"{subject or ''}\n{body or ''}"))
        if len(seen) >= MAX_TICKETS:
            break
    return frequency, max(len(seen), 1)


def _deciding_rule(evidence: dict[str, Any], kind: str) -> tuple[str, tuple[str, ...]] | None:
    """The rule that decided the changed value, and its words (the first stored hit with that effect)."""
    for hit in evidence.get("classification") or []:
        if not isinstance(hit, dict) or not isinstance(hit.get("name"), str):
            continue
        if hit.get("severity" if kind == "severity" else "role"):
            if hit["name"].startswith("fallback-"):
                return None
            return hit["name"], tuple(str(e) for e in hit.get("evidence") or ())
    return None


def _misfires(session: Session, corrections: list[_Correction], min_support: int) -> list[Suggestion]:
    from tickets.models import Ticket

    fired: Counter[str] = Counter()
    for classification, in session.execute(select(Ticket.classification)):
        for hit in classification or []:
            if isinstance(hit, dict) and isinstance(hit.get("name"), str):
                fired[hit["name"]] += 1
    misled: dict[tuple[str, str], list[_Correction]] = defaultdict(list)
    phrases: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for c in corrections:
        decided = _deciding_rule(c.evidence, c.kind)
        if decided is None:
            continue
        misled[(decided[0], c.kind)].append(c)
        phrases[(decided[0], c.kind)].update(_quoted(e) for e in decided[1])
    out = []
    for (rule, kind), items in sorted(misled.items()):
        if len(items) < min_support:
            continue
        changes = Counter(f"{c.original}->{c.final}" for c in items)
        keys = [c.key for c in items]
        rate = len(items) / max(fired[rule], len(items))
        change_text = ", ".join(f"{k} x{n}" for k, n in changes.most_common(3))
        if rate >= DISABLE_RATE and fired[rule] >= MIN_FIRED_TO_DISABLE:
            title = (f"rule {rule!r} misfired: the team changed the {kind} of {len(items)} of the "
                     f"{fired[rule]} tickets it decided ({change_text}); switch it off")
            out.append(Suggestion(title, keys, f'[[rule]]\nname = "{rule}"\nenabled = false'))
            continue
        words = [w for w, n in phrases[(rule, kind)].most_common(MAX_KEYWORDS) if w and n >= min_support]
        if kind != "severity" or not words:
            continue
        target = max((c.final for c in items), key=lambda s: _RANK.get(s, 0))
        title = (f"rule {rule!r} misfired on {len(items)} tickets ({change_text}) when these words decided; "
                 f"cap them at {target}")
        out.append(Suggestion(title, keys, _rule_table(f"suggested-cap-{rule}", f"Team corrections of rule {rule}",
                                                       {"severity_ceiling": target}, words)))
    return out


def _quoted(evidence: str) -> str:
    """'body "crm is down"' -> 'crm is down'."""
    start, end = evidence.find('"'), evidence.rfind('"')
    return evidence[start + 1:end] if 0 <= start < end else ""


def _new_keywords(corrections: list[_Correction], frequency: Counter[str], total: int, known: set[str],
                  min_support: int) -> list[Suggestion]:
    groups: dict[tuple[str, str], list[_Correction]] = defaultdict(list)
    for c in corrections:
        raised = c.kind == "role" or _RANK.get(c.final, 9) < _RANK.get(c.original, 9)
        if raised:
            groups[(c.kind, c.final)].append(c)
    out = []
    for (kind, value), items in sorted(groups.items()):
        if len(items) < min_support:
            continue
        shared: Counter[str] = Counter()
        for c in items:
            shared.update(c.words)
        # Most shared first, then rarest elsewhere, single words before phrases.
        candidates = sorted(
            (-n, frequency.get(w, 0), " " in w, w) for w, n in shared.items()
            if n >= min_support and w not in known and frequency.get(w, 0) <= max(n, MAX_COMMON * total)
        )
        words = _without_parts([w for *_, w in candidates])[:MAX_KEYWORDS]
        if not words:
            continue
        keys = [c.key for c in items]
        effect = {"severity": value} if kind == "severity" else {"role": value}
        what = f"raised to {value}" if kind == "severity" else f"handed to {value}"
        title = f"keywords to add: {len(items)} tickets the team {what} share words no rule knows"
        name = f"suggested-{kind}-{value}".lower().replace("_", "-")
        out.append(Suggestion(title, keys, _rule_table(name, f"Learnt from team corrections ({what})",
                                                       effect, words)))
    return out


def _without_parts(ranked: list[str]) -> list[str]:
    """Drop a phrase when one of its words already made the list ("lagerbestand" covers "der lagerbestand")."""
    kept: list[str] = []
    for word in ranked:
        if " " in word and any(part in kept for part in word.split()):
            continue
        kept.append(word)
    return kept


def _rule_table(name: str, description: str, effect: dict[str, str], words: list[str]) -> str:
    keywords = ", ".join(_toml_string(w) for w in words)
    lines = ["[[rule]]", f"name = {_toml_string(name)}", f"description = {_toml_string(description)}"]
    lines += [f"{k} = {_toml_string(v)}" for k, v in effect.items()]
    lines.append(f"keywords = [{keywords}]")
    return "\n".join(lines)


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'
