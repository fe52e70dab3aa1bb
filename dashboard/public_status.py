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

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from config import Config
from core.errors import UserError
from notifier.labels import role_label, severity_label
from tickets.models import Incident
from tickets.public_text import incident_names, incident_title, public_line

MAX_INCIDENTS = 50  # per list: a status page, not an archive
MAX_DAYS = 90


class StatusDaysProblem(UserError):
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
    names = incident_names(incident, team)
    kinds = ("update",) if incident.status == "open" else ("update", "resolved")
    updates = [u for u in incident.updates if u.kind in kinds]
    latest = updates[-1] if updates else None
    return PublicIncident(
        key=incident.key, title=incident_title(incident, names, role_label(incident.role)),
        severity=severity_label(incident.severity),
        since=incident.created_at, reports=len(incident.tickets),
        update=public_line(latest.text, names) if latest is not None else "",
        update_at=latest.at if latest is not None else None,
        resolved_at=incident.resolved_at if incident.status != "open" else None)
