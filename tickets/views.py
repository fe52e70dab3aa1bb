"""The JSON shapes of the contract (``tickets --json``, ``show --json``, ``/api/tickets``).

Why one module: the CLI, the dashboard and exports must print the same shape, or
scripts that read one break on the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tickets.incidents import link_reason
from tickets.models import Message, Ticket


def iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


SCOPE_WORDS = {"one": "one person", "team": "a team or site", "all": "everyone or customers"}


def _axis_text(axis: Any, words: dict[str, str]) -> str | None:
    """ "everyone or customers (outage: subject "crm is down")" from a stored axis; None if unusable."""
    if not isinstance(axis, dict) or not isinstance(axis.get("value"), str):
        return None
    shown = words.get(axis["value"], axis["value"])
    rule = axis.get("rule")
    if not isinstance(rule, str):
        return f"{shown} (default: nothing said)"
    evidence = [str(e) for e in axis.get("evidence") or () if isinstance(e, str)]
    return f"{shown} ({rule}: {'; '.join(evidence)})" if evidence else f"{shown} ({rule})"


def triage_lines(triage: Any) -> list[str]:
    """The two axes and the doubts of a stored verdict as human lines (empty for old tickets).

    One place for ``show``, the team notice, the dashboard and ``Verdict.explain``, so they all
    say the same thing in the same words.
    """
    if not isinstance(triage, dict):
        return []
    who = _axis_text(triage.get("scope"), SCOPE_WORDS)
    if who is None:
        return []
    what = _axis_text(triage.get("hit"), {}) or "nothing recognised"
    lines = [f"who is affected: {who}", f"what is hit:     {what}"]
    for key, label in (("doubts", "uncertain: "), ("settled", "settled by the learned weights: ")):
        lines += [f"{label}{d}" for d in strings_of(triage.get(key))]
    return lines


def strings_of(value: Any) -> tuple[str, ...]:
    """The strings of a stored list (a damaged or hostile value gives what is usable, or nothing)."""
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def ticket_summary(ticket: Ticket, message_count: int) -> dict[str, Any]:
    return {
        "key": ticket.key,
        "subject": ticket.subject,
        "reporter": ticket.reporter,
        "severity": ticket.severity,
        "role": ticket.role,
        "status": ticket.status,
        "assignee": ticket.assignee,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "response_due": iso(ticket.response_due),
        "first_response_at": iso(ticket.first_response_at),
        "response_met": ticket.response_met,
        "resolution_due": iso(ticket.resolution_due),
        "resolved_at": iso(ticket.resolved_at),
        "message_count": message_count,
        "rules": [hit.get("name") for hit in ticket.classification or []],
        "uncertain": bool(ticket.uncertain),
        # The incident it reports (issue 14/16); one look-up per incident (the session's identity map).
        "incident_key": ticket.incident.key if ticket.incident_id is not None and ticket.incident else None,
    }


def ticket_detail(ticket: Ticket) -> dict[str, Any]:
    data = ticket_summary(ticket, len(ticket.messages))
    data["classification"] = ticket.classification
    data["triage"] = ticket.triage
    data["resolution"] = ticket.resolution
    data["participants"] = [{"email": p.email, "kind": p.kind} for p in ticket.participants]
    data["messages"] = [
        {
            "message_id": m.message_id,
            "from": m.from_addr,
            "from_name": m.from_name,
            "direction": m.direction,
            "subject": m.subject,
            "body": m.body,
            "received_at": iso(m.received_at),
            "attachments": [
                {"filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256,
                 "stored": a.stored}
                for a in m.attachments
            ],
        }
        for m in ticket.messages
    ]
    data["events"] = [
        {"at": iso(e.at), "kind": e.kind, "actor": e.actor, "detail": e.detail, "data": e.data}
        for e in ticket.events
    ]
    incident = ticket.incident
    data["incident"] = None if incident is None else {
        "key": incident.key, "title": incident.title, "status": incident.status,
        "reports": len(incident.tickets), "tickets": [t.key for t in incident.tickets],
        "reporters": [t.reporter for t in incident.tickets], "first_report_at": iso(incident.created_at),
        "last_report_at": iso(incident.last_report_at), "resolved_at": iso(incident.resolved_at),
        "why": link_reason(ticket),
        "updates": [{"at": iso(u.at), "kind": u.kind, "author": u.author, "text": u.text} for u in incident.updates],
    }
    return data


def list_tickets(session: Session, *, status: str | None = None, severity: str | None = None,
                 limit: int | None = None) -> list[dict[str, Any]]:
    counts = (
        select(Message.ticket_id, func.count(Message.id).label("n"))
        .group_by(Message.ticket_id)
        .subquery()
    )
    query = select(Ticket, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.ticket_id == Ticket.id)
    if status:
        query = query.where(Ticket.status == status)
    if severity:
        query = query.where(Ticket.severity == severity.upper())
    query = query.order_by(Ticket.number)
    if limit:
        query = query.limit(limit)
    return [ticket_summary(ticket, count) for ticket, count in session.execute(query)]
