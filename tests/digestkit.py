"""Test helpers for digests: tickets with exact timestamps, inserted directly."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tickets.models import Event, Feedback, Ticket


def add_ticket(session: Session, number: int, created_at: datetime, *, severity: str = "P3",
               role: str = "crm_admin", status: str = "new", subject: str = "", resolved_at: datetime | None = None,
               response_due: datetime | None = None, first_response_at: datetime | None = None,
               response_met: bool | None = None, rules: tuple[str, ...] = (), reopened: int = 0,
               **extra: Any) -> Ticket:
    elapsed = (first_response_at - created_at).total_seconds() if first_response_at else None
    ticket = Ticket(
        number=number, key=f"HC-{number}", subject=subject or f"ticket {number}", reporter=f"u{number}@c.example",
        severity=severity, role=role, status=status, created_at=created_at,
        updated_at=resolved_at or created_at, response_due=response_due or created_at + timedelta(hours=1),
        first_response_at=first_response_at, response_met=response_met, response_elapsed_seconds=elapsed,
        resolved_at=resolved_at, reopened_count=reopened,
        classification=[{"name": r, "description": r, "severity": severity, "role": role, "evidence": []}
                        for r in rules],
        **extra,
    )
    session.add(ticket)
    session.flush()
    return ticket


def add_reopen(session: Session, ticket: Ticket, at: datetime) -> None:
    session.add(Event(ticket_id=ticket.id, at=at, kind="reopened", actor="u@c.example", detail="again"))


def add_rating(session: Session, ticket: Ticket, rating: int, at: datetime, comment: str = "") -> None:
    session.add(Feedback(ticket_id=ticket.id, rating=rating, comment=comment, at=at))
