"""What a mail that joined an existing ticket does to it.

Why separate from threading: threading only decides *which* ticket; this decides
what the reply *means* (reporter adds information, reporter answers while we wait,
reporter reopens a resolved ticket, a late reply opens a new linked ticket).
Team reply commands (``#resolve`` ...) plug in through ``team_reply``; the team hears about
a reporter's reply or reopening through ``customer_update`` (notifier.customer_update).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from config import Config
from intake.message import ParsedMessage
from intake.opening import TicketOpener
from intake.threading import ThreadMatch
from tickets.lifecycle import is_participant, record_event
from tickets.models import Message, Ticket
from tickets.sla import SlaPolicy
from tickets.tokens import ReplyTokens


@dataclass(frozen=True)
class ReplyOutcome:
    action: str  # threaded | reopened | created | command | comment
    ticket: Ticket
    detail: str = ""


TeamReply = Callable[[Session, ThreadMatch, Message, ParsedMessage, datetime], ReplyOutcome | None]
# (session, ticket, the inbound message, now, "reply" | "resumed" | "reopened"); it decides who is told.
CustomerUpdate = Callable[[Session, Ticket, Message, datetime, str], object]


class ReplyHandler:
    def __init__(self, config: Config, tokens: ReplyTokens, opener: TicketOpener, sla: SlaPolicy,
                 team_reply: TeamReply | None = None, customer_update: CustomerUpdate | None = None,
                 rating: TeamReply | None = None) -> None:
        self.config = config
        self.tokens = tokens
        self.opener = opener
        self.sla = sla
        self.team_reply = team_reply
        self.customer_update = customer_update
        self.rating = rating  # first: a rating of a resolved ticket must never reopen it (notifier.feedback)

    def handle(self, session: Session, match: ThreadMatch, message: Message, parsed: ParsedMessage,
               now: datetime) -> ReplyOutcome | None:
        ticket = match.ticket
        assert ticket is not None
        if self.rating is not None:
            outcome = self.rating(session, match, message, parsed, now)
            if outcome is not None:
                return outcome
        sender = parsed.from_addr
        if self.config.team_member(sender) is not None and self.team_reply is not None:
            outcome = self.team_reply(session, match, message, parsed, now)
            if outcome is not None:
                return outcome
        if match.token_valid and self.config.team_member(sender) is None and not is_participant(ticket, sender):
            # A team mail's signed address forwarded to someone outside the ticket proves nothing about them.
            message.disposition = "comment"
            record_event(session, ticket, "comment", now, actor=sender, detail=_first_line(parsed.body),
                         data={"reason": "signed reply from someone not on the team or the ticket"},
                         message_row_id=message.id)
            return ReplyOutcome("comment", ticket, "not on the team: recorded as a comment, nothing changed")
        if ticket.status in ("resolved", "closed"):
            return self._reply_to_closed(session, ticket, message, parsed, now)
        kind = "reply"
        if ticket.status == "waiting_on_customer" and is_participant(ticket, sender):
            self.resume(session, ticket, now, actor=sender, message_row_id=message.id)
            kind = "resumed"
        record_event(session, ticket, "reply", now, actor=sender, detail=_first_line(parsed.body),
                     message_row_id=message.id)
        if self.customer_update is not None:
            self.customer_update(session, ticket, message, now, kind)
        return ReplyOutcome("threaded", ticket, f"via {match.via}")

    def resume(self, session: Session, ticket: Ticket, now: datetime, *, actor: str,
               message_row_id: int | None = None) -> None:
        """Leave waiting_on_customer: the paused time is added to the response due time."""
        if ticket.paused_at is not None and ticket.response_due is not None and ticket.first_response_at is None:
            ticket.response_due = self.sla.shift_for_pause(ticket.severity, ticket.response_due,
                                                           ticket.paused_at, now)
        ticket.paused_at = None
        ticket.status = "in_progress"
        record_event(session, ticket, "resumed", now, actor=actor, detail="reporter replied; SLA clock resumed",
                     message_row_id=message_row_id)

    def _reply_to_closed(self, session: Session, ticket: Ticket, message: Message, parsed: ParsedMessage,
                         now: datetime) -> ReplyOutcome:
        window = timedelta(days=self.config.hypercare.reopen_days)
        resolved_at = ticket.resolved_at or ticket.updated_at
        if ticket.status == "resolved" and now - resolved_at <= window and is_participant(ticket, parsed.from_addr):
            ticket.status = "in_progress"
            ticket.resolved_at = None
            ticket.reopened_count += 1
            record_event(session, ticket, "reopened", now, actor=parsed.from_addr,
                         detail=_first_line(parsed.body), message_row_id=message.id)
            if self.customer_update is not None:
                self.customer_update(session, ticket, message, now, "reopened")
            return ReplyOutcome("reopened", ticket, f"reopen #{ticket.reopened_count}")
        new = self.opener.open(session, parsed, message, now, linked=ticket)
        return ReplyOutcome("created", new, f"{new.severity} {new.role} linked to {ticket.key} (closed)")


def _first_line(text: str, limit: int = 200) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""
