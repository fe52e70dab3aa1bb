"""The public status page ``/status``: what every user may read about current and recent incidents.

Why a page of its own and not a filtered dashboard: the dashboard shows reporters, subjects and
bodies to the team; a status page is for everyone, so it is built from a short list of fields that
are safe by construction, never by escaping a private one:

* the title in neutral words: the meaningful words the incident's reports share (``tickets.topics``),
  never one reporter's subject, with the names and address parts of every reporter and team member
  left out (a subject such as "Maria's CRM is down" gives "CRM down", not "Maria");
* since when, how many reports, the severity word, when it was resolved;
* the latest ``#update`` (for a resolved incident: the resolution) as the team wrote it for the
  public, with any mail address, phone number and the names of reporters and team members replaced
  (``tickets.public_text``): a pasted reporter's address is a slip, not a publication.

Nothing else of a ticket is read into the page's data, so no template change can leak a body,
an address or a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from config import Config
from notifier.labels import role_label, severity_label
from tickets.incidents import significant_terms
from tickets.models import Incident, Ticket
from tickets.public_text import names_of, public_line

MAX_TITLE_WORDS = 3
MAX_INCIDENTS = 50  # per list: a status page, not an archive
SUBJECT_CHARS = 2000  # of each report's subject read for the title words
MAX_DAYS = 90
_WORD = re.compile(r"[^\W\d_]{3,}|\d{3,}")  # the words tickets.incidents.significant_terms counts


class StatusDaysProblem(ValueError):
    """A ``days`` parameter that is not a whole number of days in range; the message says what to send."""


@dataclass(frozen=True)
class PublicIncident:
    key: str
    title: str
    severity: str  # the word ("Critical"), not the code
    since: datetime
    reports: int
    update: str
    update_at: datetime | None
    resolved_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "severity": self.severity, "since": self.since,
                "reports": self.reports, "update_text": self.update, "update_at": self.update_at,
                "resolved_at": self.resolved_at}


def parse_days(values: list[str] | None, default: int) -> int:
    """The ``days`` query parameter (resolved incidents of the last N days), 1..MAX_DAYS; default when absent."""
    if not values or values[0] == "":
        return default
    raw = values[0]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 3 or not 1 <= int(raw) <= MAX_DAYS:
        shown = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "+-.") else "?" for ch in raw[:20])
        raise StatusDaysProblem(f"days {shown!r}: use a whole number of days from 1 to {MAX_DAYS}")
    return int(raw)


def public_status(session: Session, config: Config, now: datetime, days: int) -> dict[str, Any]:
    """Current incidents (open) and those resolved within the last *days*, newest first, as public data."""
    since = now - timedelta(days=days)
    query = (select(Incident).where(or_(Incident.status == "open", Incident.resolved_at >= since),
                                    Incident.created_at <= now)
             .options(selectinload(Incident.tickets), selectinload(Incident.updates))
             .order_by(Incident.created_at.desc()).limit(2 * MAX_INCIDENTS))
    team = {(m.name, m.email) for m in config.team}
    current: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    for incident in session.scalars(query):
        item = public_incident(incident, team)
        bucket = current if incident.status == "open" or incident.resolved_at is None else resolved
        if len(bucket) < MAX_INCIDENTS:
            bucket.append(item.to_dict())
    return {"generated_at": now, "days": days, "current": current, "resolved": resolved,
            "support_name": public_line(config.support.name, limit=120)}


def public_incident(incident: Incident, team: set[tuple[str, str]]) -> PublicIncident:
    reports: list[Ticket] = list(incident.tickets)
    names = names_of({*team, *((t.reporter_name, t.reporter) for t in reports)})
    kinds = ("update",) if incident.status == "open" else ("update", "resolved")
    updates = [u for u in incident.updates if u.kind in kinds]
    latest = updates[-1] if updates else None
    return PublicIncident(
        key=incident.key, title=neutral_title(incident, reports, names), severity=severity_label(incident.severity),
        since=incident.created_at, reports=len(reports),
        update=public_line(latest.text, names) if latest is not None else "",
        update_at=latest.at if latest is not None else None,
        resolved_at=incident.resolved_at if incident.status != "open" else None)


def neutral_title(incident: Incident, reports: list[Ticket], names: set[str]) -> str:
    """The words most of the reports' subjects share (for a single report: its subject's words), in the
    spelling first seen ("CRM down"), names and addresses left out; when no word is left, the owner
    area ("Problem in CRM administration")."""
    lowered = {n.lower() for n in names}
    counts: dict[str, int] = {}  # in order of first appearance: the first report's words win a tie
    spelling: dict[str, str] = {}
    for ticket in reports:
        subject = (ticket.subject or "")[:SUBJECT_CHARS]
        for match in _WORD.finditer(subject):
            spelling.setdefault(match.group().lower(), match.group())
        for word in significant_terms(subject):
            counts[word] = counts.get(word, 0) + 1
    order = {word: i for i, word in enumerate(counts)}
    needed = 2 if len(reports) > 1 else 1

    def personal(word: str) -> bool:
        return word in lowered or word.split("'")[0].split("’")[0] in lowered

    ranked = sorted((w for w, n in counts.items() if n >= needed and not personal(w)),
                    key=lambda w: (-counts[w], order[w]))
    words = [public_line(spelling.get(w, w), names, limit=40) for w in ranked[:MAX_TITLE_WORDS]]
    words = [w for w in words if w and "[" not in w]
    area = role_label(incident.role)
    if not words:
        return f"Problem in {area}"
    title = " ".join(words)
    return f"{title[0].upper()}{title[1:]} ({area})"
