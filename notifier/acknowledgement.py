"""The acknowledgement a reporter receives when their mail opens a ticket.

Why a class of its own: it is the first promise the desk makes (severity, first
response time, owner role, how to reply), so its content is assembled in one place
and enqueued in the same transaction as the ticket.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from config import Config
from notifier.labels import role_label, severity_label
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue, short_key
from notifier.render import Renderer
from tickets.models import Message, Ticket


class Acknowledger:
    def __init__(self, config: Config, renderer: Renderer, target_label: Callable[[str], str]) -> None:
        self.config = config
        self.renderer = renderer
        self.target_label = target_label

    def enqueue(self, session: Session, ticket: Ticket, request: Message, now: datetime) -> None:
        tz = self.config.hypercare.tz
        rendered = self.renderer.render(
            "ack",
            ticket=ticket,
            request=request,
            severity=severity_label(ticket.severity),
            role=role_label(ticket.role),
            response_target=self.target_label(ticket.severity),
            response_due=ticket.response_due.astimezone(tz) if ticket.response_due else None,
            support=self.config.support,
            tz=tz,
        )
        mail = OutgoingMail(
            kind="ack",
            to=[ticket.reporter],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            in_reply_to=request.message_id,
            references=[*request.references, request.message_id],
            auto_submitted="auto-replied",
        )
        # The ticket may not be flushed yet (TicketOpener): pass the object, let its flush store all.
        enqueue(session, mail, key=f"ack:{short_key(request.message_id)}", support=self.config.support,
                now=now, ticket=ticket, flush=False)

