"""Ticket search and filters: what ``/api/tickets`` and the dashboard page accept, checked once.

Why a parsed filter and not raw query values in SQL: a page parameter is hostile input.  Each
value is capped, stripped of control characters (PostgreSQL refuses NUL in a string; a CR/LF
must not reach a log line), checked against the known statuses, severities and roles, and the
text is matched as text (``%`` and ``_`` escaped), never as a pattern.  A wrong value is one
line naming the parameter (HTTP 400), never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from config import ROLES, SEVERITIES
from core.errors import UserError
from tickets.models import OPEN_STATUSES, STATUSES, Incident, Message, Ticket
from tickets.views import ticket_summary

MAX_TEXT = 200
SEARCH_LIMIT = 500
PARAMETERS = ("q", "status", "severity", "role", "incident")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_INCIDENT = re.compile(r"INC-\d{1,12}")


class FilterProblem(UserError):
    """A search parameter with a value the desk does not know; the message names it."""


@dataclass(frozen=True)
class TicketFilter:
    text: str = ""
    status: str = ""  # a status, "open" or "" (any)
    severity: str = ""
    role: str = ""
    incident: str = ""  # an incident key ("INC-3"): its reports

    @property
    def active(self) -> bool:
        return any((self.text, self.status, self.severity, self.role, self.incident))

    def to_dict(self) -> dict[str, str]:
        return {"q": self.text, "status": self.status, "severity": self.severity, "role": self.role,
                "incident": self.incident}


def _first(query: Mapping[str, Sequence[str]], name: str) -> str:
    values = query.get(name) or [""]
    return _CONTROL.sub(" ", values[0][:MAX_TEXT * 4]).strip()


def parse_filter(query: Mapping[str, Sequence[str]]) -> TicketFilter:
    """Read ``q``, ``status``, ``severity``, ``role`` and ``incident`` (first value each); FilterProblem when
    a value is unknown (an incident key of the right shape that names no incident simply finds nothing)."""
    text = " ".join(_first(query, "q").split())[:MAX_TEXT]
    status = _first(query, "status").lower()
    severity = _first(query, "severity").upper()
    role = _first(query, "role").lower()
    incident = _first(query, "incident").upper()
    if status and status not in (*STATUSES, "open"):
        raise FilterProblem(f"status {status[:40]!r}: use one of {', '.join(STATUSES)} or open")
    if severity and severity not in SEVERITIES:
        raise FilterProblem(f"severity {severity[:40]!r}: use one of {', '.join(SEVERITIES)}")
    if role and role not in ROLES:
        raise FilterProblem(f"role {role[:40]!r}: use one of {', '.join(ROLES)}")
    if incident and not _INCIDENT.fullmatch(incident):
        raise FilterProblem(f"incident {incident[:40]!r}: use an incident key like INC-3")
    return TicketFilter(text, status, severity, role, incident)


def search_tickets(session: Session, wanted: TicketFilter, limit: int | None = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Tickets matching every given filter, by number; the text matches key, subject or reporter; the
    incident filter keeps the reports of that incident."""
    counts = select(Message.ticket_id, func.count(Message.id).label("n")).group_by(Message.ticket_id).subquery()
    query = select(Ticket, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.ticket_id == Ticket.id)
    if wanted.status == "open":
        query = query.where(Ticket.status.in_(OPEN_STATUSES))
    elif wanted.status:
        query = query.where(Ticket.status == wanted.status)
    if wanted.severity:
        query = query.where(Ticket.severity == wanted.severity)
    if wanted.role:
        query = query.where(Ticket.role == wanted.role)
    if wanted.incident:
        query = query.where(Ticket.incident_id.in_(select(Incident.id).where(Incident.key == wanted.incident)))
    if wanted.text:
        like = "%" + re.sub(r"([!%_])", r"!\1", wanted.text.lower()) + "%"
        query = query.where(or_(*(func.lower(column).like(like, escape="!")
                                  for column in (Ticket.key, Ticket.subject, Ticket.reporter))))
    query = query.order_by(Ticket.number)
    if limit:
        query = query.limit(limit)
    return [ticket_summary(ticket, count) for ticket, count in session.execute(query)]
