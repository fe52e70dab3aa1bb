"""A stakeholder's reply to a digest (or any mail of ours that belongs to no ticket).

Why not a ticket (issue 14): a CIO answering the status email became a P3 ticket and got an
acknowledgement.  Such a reply is a comment for the people who own the conversation with
stakeholders, the project managers: they get it as one mail (``stakeholder-reply:<id>``)
with Reply-To the sender, so answering it reaches the stakeholder directly; the sender gets
nothing automatic.  The message is kept (disposition ``comment``, no ticket).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from config import Config
from intake.parse.message import ParsedMessage
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue, short_key
from notifier.render import Renderer
from tickets.models import Message, OutboxItem

log = logging.getLogger("hypercare.intake")
KIND = "stakeholder_reply"


class StakeholderReplies:
    def __init__(self, config: Config, renderer: Renderer) -> None:
        self.config = config
        self.renderer = renderer

    def __call__(self, session: Session, sent: OutboxItem, message: Message, parsed: ParsedMessage,
                 now: datetime) -> str:
        managers = [m.email for m in self.config.team if "project_manager" in m.roles]
        if not managers:
            log.warning("reply from %s to %s: no project manager in [[team]]; kept as a comment", parsed.from_addr,
                        sent.kind)
            return f"reply to {sent.kind} from {parsed.from_addr}: kept as a comment (no project manager to tell)"
        rendered = self.renderer.render(KIND, sender=parsed.from_addr, sender_name=parsed.from_name, sent=sent,
                                        subject=parsed.subject, body=parsed.body, support=self.config.support)
        mail = OutgoingMail(kind=KIND, to=managers, subject=rendered.subject, text=rendered.text, html=rendered.html,
                            reply_to=parsed.from_addr, in_reply_to=message.message_id,
                            references=[sent.message_id, message.message_id], auto_submitted="auto-generated")
        enqueue(session, mail, key=f"{KIND}:{short_key(message.message_id)}", support=self.config.support, now=now)
        return f"reply to {sent.kind} from {parsed.from_addr}: sent to the project managers as a comment"
