"""A ticket's first-response clock, rebuilt from its audit events.

Why rebuilt and not stored: the clock's inputs are already facts in the database
(``created_at``, the severity, and the ``paused``/``resumed`` events of
``waiting_on_customer``); deriving start, due and fraction from them means a severity
change can recompute the due time with the pauses re-applied, the sweep can measure
50 % of the *running* time (not of the wall time including the pause), and nothing
extra must be kept in step.  Pure time logic on top of ``tickets.sla.SlaPolicy``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tickets.clock import as_utc
from tickets.models import Event, Ticket
from tickets.sla import SlaPolicy

PAUSE_KINDS = ("paused", "resumed")
SEVERITY_CHANGED = "severity_changed"


@dataclass(frozen=True)
class Pause:
    start: datetime
    end: datetime


def pauses_from(events: Iterable[Event]) -> list[Pause]:
    """Completed pauses, in order: each ``paused`` event closed by the next ``resumed``."""
    pauses: list[Pause] = []
    opened: datetime | None = None
    for event in sorted((e for e in events if e.kind in PAUSE_KINDS), key=lambda e: (e.at, e.id or 0)):
        if event.kind == "paused" and opened is None:
            opened = as_utc(event.at)
        elif event.kind == "resumed" and opened is not None:
            pauses.append(Pause(opened, as_utc(event.at)))
            opened = None
    return pauses


def cycle_of(events: Iterable[Event]) -> int:
    """The escalation cycle: 0, plus one per severity change (each change starts a new clock)."""
    return sum(1 for e in events if e.kind == SEVERITY_CHANGED)


def effective_start(sla: SlaPolicy, severity: str, created_at: datetime, pauses: Iterable[Pause]) -> datetime:
    """``created_at`` moved on by the running-clock length of every completed pause.

    From this start to the due time is exactly the target on the severity's clock, so
    ``fraction_elapsed(start, due, now)`` counts only the time the clock was running.
    """
    start = as_utc(created_at)
    for pause in pauses:
        if sla.uses_business_time(severity):
            start = sla.calendar.add_business_seconds(
                start, sla.calendar.business_seconds_between(pause.start, pause.end))
        else:
            start = start + (pause.end - pause.start)
    return start


def recompute_due(sla: SlaPolicy, severity: str, created_at: datetime, pauses: Iterable[Pause]) -> datetime:
    """The response due time of *severity* for a ticket opened at *created_at*, pauses re-applied."""
    due = sla.response_due(severity, created_at)
    for pause in pauses:
        due = sla.shift_for_pause(severity, due, pause.start, pause.end)
    return due


def fraction(sla: SlaPolicy, ticket: Ticket, pauses: Iterable[Pause], now: datetime) -> float | None:
    """How much of the running response clock has passed, or None when it does not run."""
    if ticket.response_due is None or ticket.first_response_at is not None or ticket.paused_at is not None:
        return None
    start = effective_start(sla, ticket.severity, ticket.created_at, pauses)
    return sla.fraction_elapsed(ticket.severity, start, ticket.response_due, now)


def record_first_response(sla: SlaPolicy, ticket: Ticket, pauses: Iterable[Pause], now: datetime) -> bool:
    """Stop the response clock at *now* (met or breached, elapsed running time); False if already stopped."""
    if ticket.first_response_at is not None:
        return False
    end = as_utc(ticket.paused_at) if ticket.paused_at is not None else as_utc(now)
    start = effective_start(sla, ticket.severity, ticket.created_at, pauses)
    ticket.first_response_at = now
    ticket.response_elapsed_seconds = max(0.0, sla.elapsed(ticket.severity, start, end))
    ticket.response_met = ticket.response_due is None or end <= as_utc(ticket.response_due)
    return True


def describe_left(sla: SlaPolicy, severity: str, due: datetime | None, now: datetime) -> str:
    """ "1 h 20 min left" / "overdue by 35 min" on the severity's clock, for mails."""
    if due is None:
        return "no response target"
    seconds = sla.remaining(severity, due, now)
    business = " business time" if sla.uses_business_time(severity) else ""
    if seconds >= 0:
        return f"{format_duration(seconds)}{business} left"
    return f"overdue by {format_duration(-seconds)}{business}"


def format_duration(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)
