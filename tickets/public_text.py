"""Text for readers outside the desk (the public status page, knowledge-base drafts).

Why in the domain: the status page (``dashboard.public_status``) and the hand-over drafts
(``handover.kb``) must apply the same rule: mail addresses, phone numbers and the names of the
people involved (reporters, the team) never reach a page that everyone may read, whatever the
text was meant for.  Team-written text (``#update``) is meant for the public, but a pasted
address or a reporter's name in it is a slip, and one slip on a page for all users is a leak.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, cast, event, func, inspect, select
from sqlalchemy.orm import Session

from core.untrusted_text import storable_text
from tickets import incidents as _incidents
from tickets.incidents import significant_terms, unflushed_reports
from tickets.models import Incident, Ticket

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


def name_parts(names: Iterable[str]) -> set[str]:
    """The lower-case words of *names* that ``redact`` replaces (initials left out)."""
    return {part.lower() for name in names for part in _NAME_PART.findall(name or "") if len(part) >= MIN_NAME}


def redact(text: str, names: Iterable[str] = (), *, parts: Container[str] | None = None) -> str:
    """*text* with mail addresses, phone numbers and the given *names* replaced by placeholders
    (*parts*: ``name_parts(names)`` computed before, for an incident's thousands of reporters)."""
    text = _EMAIL.sub("[email]", text)

    def phone(match: re.Match[str]) -> str:
        value = match.group(0)
        if sum(ch.isdigit() for ch in value) < 7 or _DATE_OR_TIME.match(value.strip()):
            return value
        return "[phone]"

    text = _PHONE.sub(phone, text)
    # One pass over the text's words, each looked up in a set: an incident may have thousands of
    # reporters, and a regex per name made one status page or acknowledgement cost seconds.
    if parts is None:
        parts = name_parts(names)
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


def public_line(text: str, names: Iterable[str] = (), limit: int = 600, *,
                parts: Container[str] | None = None) -> str:
    """One line of text safe for a public page: storable (no NUL, no lone surrogates), control
    characters and line breaks as spaces, redacted, at most *limit* characters."""
    text = storable_text(text[: limit * 8])
    text = " ".join(_CONTROLS.sub(" ", text).split())
    text = redact(text, names, parts=parts)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def neutral_title(subjects: Iterable[str], names: Iterable[str], area: str) -> str:
    """An incident's title for readers outside the desk: the words most of its reports' *subjects* share
    (for a single report: its subject's words), in the spelling first seen ("CRM down"), the *names* of
    the people involved left out, with the owner *area*; when no word is left, "Problem in <area>".

    Why not the stored title: that is the first reporter's subject ("Maria's CRM is down"), written
    for the desk, not for everyone."""
    lowered = {n.lower() for n in names}
    return TitleWords().extended(subjects).title(lowered, name_parts(lowered), area)


@dataclass(frozen=True)
class TitleWords:
    """What ``neutral_title`` counts in the subjects, before the names are left out: kept per incident by
    ``IncidentPeople`` and extended by each later report, so a storm's title is not recounted per report."""

    counts: dict[str, int] = field(default_factory=dict)  # in order of first appearance: the first report's
    spelling: dict[str, str] = field(default_factory=dict)  # words win a tie
    reports: int = 0

    def extended(self, subjects: Iterable[str]) -> TitleWords:
        counts, spelling, reports = dict(self.counts), dict(self.spelling), self.reports
        for subject in subjects:
            reports += 1
            subject = (subject or "")[:SUBJECT_CHARS]
            for match in _WORD.finditer(subject):
                spelling.setdefault(match.group().lower(), match.group())
            for word in significant_terms(subject):
                counts[word] = counts.get(word, 0) + 1
        return TitleWords(counts, spelling, reports)

    def title(self, lowered: Container[str], lowered_parts: Container[str], area: str) -> str:
        """The title without the words in *lowered* (lower-case names; *lowered_parts*: their ``name_parts``)."""
        counts = self.counts
        order = {word: i for i, word in enumerate(counts)}
        needed = 2 if self.reports > 1 else 1

        def personal(word: str) -> bool:
            return word in lowered or word.split("'")[0].split("’")[0] in lowered

        ranked = sorted((w for w, n in counts.items() if n >= needed and not personal(w)),
                        key=lambda w: (-counts[w], order[w]))
        words = [public_line(self.spelling.get(w, w), (), limit=40, parts=lowered_parts)
                 for w in ranked[:MAX_TITLE_WORDS]]
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


class _Either:
    """Membership in any of a few sets, without copying them into one (an incident's thousands of names)."""

    def __init__(self, *sets: Container[str]) -> None:
        self.sets = [s for s in sets if s]

    def __contains__(self, item: object) -> bool:
        return any(item in s for s in self.sets)

    def __bool__(self) -> bool:
        return bool(self.sets)


_ROLLBACKS = [0]  # every rollback in this process (a savepoint's too): rows read in it may be gone


@event.listens_for(Session, "after_soft_rollback")
def _count_rollback(session: Session, previous_transaction: object) -> None:
    _ROLLBACKS[0] += 1


@dataclass
class _People:
    """What ``IncidentPeople`` keeps of one incident's stored reports."""

    fingerprint: tuple[int, int, int, int]  # count, max id, sum of ids, sum of squared ids
    names: set[str]
    lowered: set[str]
    parts: set[str]
    lowered_parts: set[str]
    first: list[tuple[Any, int, str]]  # (created_at, id, subject) of the first TITLE_REPORTS, in that order
    words: TitleWords

    def add(self, people: Iterable[tuple[str, str]]) -> None:
        names = names_of(people) - self.names
        lowered = {n.lower() for n in names} - self.lowered
        self.names |= names
        self.lowered |= lowered
        self.parts |= name_parts(names)
        self.lowered_parts |= name_parts(lowered)


class IncidentPeople:
    """The names of everyone involved in an incident and its title words, gathered once per incident and
    extended by each later report: what the "known issue" acknowledgement needs (``incident_names``,
    ``incident_title``, the redacted ``#update``) without walking every report for every report.

    Each use asks the database for the incident's stored reports as one aggregate (count, largest id, the
    sums of the ids and of their squares) and reads only the reports with a larger id than those it has
    seen; any other change (a report taken out or linked, a rollback in this process) reads them all again.
    Reports not flushed yet (the new one) are added for this use only.
    """

    KEEP = 32  # incidents kept (a long-running daemon sees many; each holds names and 200 subjects)

    def __init__(self, team: Iterable[tuple[str, str]]) -> None:
        self.team = set(team)
        self._kept: dict[int, _People] = {}
        self._generation = (-1, -1)
        self.rows_read = 0  # reports read from the database: one per later report of a storm (tests)

    def facts(self, incident: Incident, area: str) -> tuple[str, Container[str], int]:
        """*incident*'s public title, the name words to redact from text about it (``public_line(parts=)``)
        and its number of reports."""
        pending = unflushed_reports(incident)
        if pending is None:  # unflushed changes to stored reports: only incident.tickets tells
            names = incident_names(incident, self.team)
            return incident_title(incident, names, area), name_parts(names), len(incident.tickets)
        people = self._people(incident)
        new = [t for t in pending if t.id is None]
        extra = names_of((t.reporter_name, t.reporter) for t in new) - people.names
        extra_lowered = {n.lower() for n in extra} - people.lowered
        lowered = _Either(people.lowered, extra_lowered)
        lowered_parts = _Either(people.lowered_parts, name_parts(extra_lowered))
        words = people.words
        if new:
            # incident_title's order: by arrival, then id; a report not flushed yet counts as id 0.
            entries = [(t.created_at, 0, t.subject) for t in new]
            last = people.first[-1][:2] if people.first else None
            if last is None or all((c, i) > last for c, i, _ in entries):
                if len(people.first) < TITLE_REPORTS:
                    words = words.extended(s for _, _, s in sorted(entries, key=lambda e: e[:2])
                                           [:TITLE_REPORTS - len(people.first)])
            else:
                first = sorted([*people.first, *entries], key=lambda e: e[:2])[:TITLE_REPORTS]
                words = TitleWords().extended(s for _, _, s in first)
        title = words.title(lowered, lowered_parts, area)
        return title, _Either(people.parts, name_parts(extra)), people.fingerprint[0] + len(pending)

    def _people(self, incident: Incident) -> _People:
        session = inspect_session(incident)
        generation = (_ROLLBACKS[0], _incidents.MEMBERSHIP_CHANGES[0])
        if generation != self._generation:
            self._kept.clear()
            self._generation = generation
        ids = Ticket.id
        with session.no_autoflush:
            row = session.execute(select(func.count(ids), func.max(ids), func.sum(ids),
                                         func.sum(cast(ids, BigInteger) * ids))
                                  .where(Ticket.incident_id == incident.id)).one()
            fingerprint = (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), int(row[3] or 0))
            kept = self._kept.get(incident.id)
            if kept is not None and kept.fingerprint == fingerprint:
                return kept
            rows = session.execute(select(Ticket.id, Ticket.created_at, Ticket.subject, Ticket.reporter_name,
                                          Ticket.reporter)
                                   .where(Ticket.incident_id == incident.id,
                                          Ticket.id > (kept.fingerprint[1] if kept is not None else 0))
                                   .order_by(Ticket.id)).all()
        if kept is not None:
            count, top, total, squares = kept.fingerprint
            added = (count + len(rows), max([top, *(r.id for r in rows)]), total + sum(r.id for r in rows),
                     squares + sum(r.id * r.id for r in rows))
            if added != fingerprint:  # a report left, or an older one joined: read them all
                kept = None
                with session.no_autoflush:
                    rows = session.execute(select(Ticket.id, Ticket.created_at, Ticket.subject,
                                                  Ticket.reporter_name, Ticket.reporter)
                                           .where(Ticket.incident_id == incident.id).order_by(Ticket.id)).all()
        if kept is None:
            kept = _People(fingerprint, set(), set(), set(), set(), [], TitleWords())
            kept.add(self.team)
        kept.fingerprint = fingerprint
        self.rows_read += len(rows)
        kept.add((r.reporter_name, r.reporter) for r in rows)
        entries = sorted(((r.created_at, r.id, r.subject) for r in rows), key=lambda e: e[:2])
        last = kept.first[-1][:2] if kept.first else None
        if last is None or all(e[:2] > last for e in entries):
            room = TITLE_REPORTS - len(kept.first)
            kept.first += entries[:room]
            kept.words = kept.words.extended(s for _, _, s in entries[:room])
        else:
            kept.first = sorted([*kept.first, *entries], key=lambda e: e[:2])[:TITLE_REPORTS]
            kept.words = TitleWords().extended(s for _, _, s in kept.first)
        self._kept.pop(incident.id, None)
        self._kept[incident.id] = kept  # the most recently used last
        while len(self._kept) > self.KEEP:
            del self._kept[next(iter(self._kept))]
        return kept


def inspect_session(incident: Incident) -> Session:
    session = inspect(incident).session
    assert session is not None
    return session
