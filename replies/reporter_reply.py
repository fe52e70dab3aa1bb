"""What a reply from the reporter (or anyone taking part who is not on the team) does to a ticket.

Why separate from threading: threading only decides *which* ticket; this decides what the
reply *means*: the reporter adds information, answers while we wait (the SLA clock resumes),
reopens a resolved ticket within ``reopen_days``, or, later than that, opens a new linked
ticket.  The team hears about a reply or a reopening through ``notify_team``
(``notifier.reporter_update``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from config import Config
from intake.opening import TicketOpener
from intake.parse.message import ParsedMessage
from intake.thread import ReplyOutcome
from tickets.lifecycle import first_line, is_participant, record_event
from tickets.models import Message, Ticket
from tickets.sla import SlaPolicy

# (session, ticket, the inbound message, now, "reply" | "resumed" | "reopened"); it decides who is told.
TeamNotification = Callable[[Session, Ticket, Message, datetime, str], object]


class ReporterReplies:
    def __init__(self, config: Config, opener: TicketOpener, sla: SlaPolicy,
                 notify_team: TeamNotification | None = None) -> None:
        self.config = config
        self.opener = opener
        self.sla = sla
        self.notify_team = notify_team

    def to_open_ticket(self, session: Session, ticket: Ticket, message: Message, parsed: ParsedMessage,
                       now: datetime, via: str) -> ReplyOutcome:
        sender = parsed.from_addr
        kind = "reply"
        if ticket.status == "waiting_on_customer" and is_participant(ticket, sender):
            self.resume(session, ticket, now, actor=sender, message_row_id=message.id)
            kind = "resumed"
        record_event(session, ticket, "reply", now, actor=sender, detail=first_line(parsed.body),
                     message_row_id=message.id)
        if self.notify_team is not None:
            self.notify_team(session, ticket, message, now, kind)
        return ReplyOutcome("threaded", ticket, f"via {via}")

    def to_closed_ticket(self, session: Session, ticket: Ticket, message: Message, parsed: ParsedMessage,
                         now: datetime) -> ReplyOutcome:
        window = timedelta(days=self.config.hypercare.reopen_days)
        resolved_at = ticket.resolved_at or ticket.updated_at
        if ticket.status == "resolved" and now - resolved_at <= window and is_participant(ticket, parsed.from_addr):
            ticket.status = "in_progress"
            ticket.resolved_at = None
            ticket.reopened_count += 1
            record_event(session, ticket, "reopened", now, actor=parsed.from_addr,
                         detail=first_line(parsed.body), message_row_id=message.id)
            if self.notify_team is not None:
                self.notify_team(session, ticket, message, now, "reopened")
            return ReplyOutcome("reopened", ticket, f"reopen #{ticket.reopened_count}")
        new = self.opener.open(session, parsed, message, now, linked=ticket)
        return ReplyOutcome("created", new, f"{new.severity} {new.role} linked to {ticket.key} (closed)")

    def resume(self, session: Session, ticket: Ticket, now: datetime, *, actor: str,
               message_row_id: int | None = None) -> None:
        """Leave waiting_on_customer: the paused time is added to the response due time."""
        if ticket.paused_at is not None and ticket.response_due is not None and ticket.first_response_at is None:
            ticket.response_due = self.sla.shift_for_pause(ticket.severity, ticket.response_due,
                                                           ticket.paused_at, now)
        if ticket.paused_at is not None and ticket.resolution_due is not None:
            # The resolution ladder does not chase a ticket that waits on the reporter: the wait is given back.
            ticket.resolution_due = ticket.resolution_due + (now - ticket.paused_at)
        ticket.paused_at = None
        ticket.status = "in_progress"
        record_event(session, ticket, "resumed", now, actor=actor, detail="reporter replied; SLA clock resumed",
                     message_row_id=message_row_id)

