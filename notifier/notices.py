"""Mail that a team member's reply causes: the public answer and the resolution notice to
the reporter, and the confirmation (or refusal) back to the team member.

Why here and each in its own method and template: the reporter must see a person's
name but never a team member's address, only the text they wrote (quoted history is
already stripped), under the ticket's tag so their answer threads back; the resolution
notice is its own template (``resolved``) so the rating request (issue 7) can be added
there alone.  Every mail is queued with an idempotency key derived from the team
member's Message-ID: a re-delivered reply never sends twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from config import Config, TeamMember
from notifier.decision_notice import enqueue_decision_notice
from notifier.labels import role_label, severity_label, status_label
from notifier.mime import OutgoingAttachment, OutgoingMail
from notifier.outbox import enqueue, short_key
from notifier.render import Renderer
from tickets.attachments import AttachmentStore
from tickets.lifecycle import first_inbound, reporter_recipients
from tickets.models import ExitDecision, Message, OutboxItem, Ticket
from tickets.tokens import ReplyTokens


def _latest_from_reporter(ticket: Ticket) -> Message | None:
    inbound = [m for m in ticket.messages if m.direction == "in" and m.from_addr.lower() == ticket.reporter.lower()]
    return inbound[-1] if inbound else None


class Notices:
    def __init__(self, config: Config, renderer: Renderer, tokens: ReplyTokens,
                 feedback: Callable[[Ticket, datetime], Any] | None = None,
                 command_help: Sequence[str] = ()) -> None:
        self.config = config
        self.command_help = tuple(command_help)  # the reply commands' help lines (replies.command_syntax)
        self.renderer = renderer
        self.tokens = tokens
        # The rating request of the resolution notice (replies.ratings.FeedbackDesk.request_for):
        # an object with ``address`` (the notice's Reply-To) and what templates/_feedback.*.j2 read, or None.
        self.feedback = feedback

    # --- to the reporter -----------------------------------------------------------------------

    def exit_decision(self, session: Session, decision: ExitDecision, now: datetime) -> OutboxItem:
        """The confirmation of a recorded exit decision to the stakeholders and the decider."""
        return enqueue_decision_notice(session, self.config, self.renderer, decision, now)

    def public_answer(self, session: Session, ticket: Ticket, member: TeamMember, text: str, request: Message,
                      now: datetime) -> OutboxItem:
        """A team member's text, sent to the reporter under the ticket's tag, signed with their name."""
        rendered = self.renderer.render("answer", ticket=ticket, member_name=member.name, text=text,
                                        support=self.config.support)
        return self._to_reporter(session, ticket, member, "answer", rendered.subject, rendered.text,
                                 rendered.html, key=f"answer:{short_key(request.message_id)}", now=now,
                                 attachments=self._attachments_of(request))

    def resolution(self, session: Session, ticket: Ticket, member: TeamMember, resolution: str, text: str,
                   request: Message, now: datetime, key: str | None = None) -> OutboxItem:
        """The resolution notice: what was done, how long a reply reopens the ticket, the rating request."""
        feedback = self.feedback(ticket, now) if self.feedback is not None else None
        rendered = self.renderer.render(
            "resolved", ticket=ticket, member_name=member.name, resolution=resolution, text=text,
            reopen_days=self.config.hypercare.reopen_days, support=self.config.support, feedback=feedback)
        return self._to_reporter(session, ticket, member, "resolved", rendered.subject, rendered.text,
                                 rendered.html, key=key or f"resolved:{short_key(request.message_id)}", now=now,
                                 reply_to=getattr(feedback, "address", None),
                                 attachments=self._attachments_of(request))

    def _to_reporter(self, session: Session, ticket: Ticket, member: TeamMember, kind: str, subject: str,
                     text: str, html: str | None, *, key: str, now: datetime,
                     reply_to: str | None = None, attachments: Sequence[OutgoingAttachment] = ()) -> OutboxItem:
        last = _latest_from_reporter(ticket)
        first = first_inbound(ticket)
        references = [m.message_id for m in (first, last) if m is not None]
        mail = OutgoingMail(kind=kind, to=reporter_recipients(self.config, ticket), subject=subject, text=text,
                            html=html, reply_to=reply_to, in_reply_to=last.message_id if last is not None else None,
                            references=list(dict.fromkeys(references)), auto_submitted="no",
                            attachments=attachments)
        # The reporter sees the person's name, never their address: "Ada (CRM Hypercare Support)".
        support = dataclasses.replace(self.config.support, name=f"{member.name} ({self.config.support.name})")
        return enqueue(session, mail, key=key, support=support, now=now, ticket_id=ticket.id)

    def _attachments_of(self, request: Message) -> list[OutgoingAttachment]:
        """What the team member attached (a screenshot of the fix) goes to the reporter too.

        Only what intake stored: an attachment over the size cap was never kept, so it is left out
        and the reporter's mail says nothing false about it.
        """
        store = AttachmentStore(self.config.path(self.config.intake.attachments_dir))
        found = []
        for attachment in request.attachments:
            data = store.get(attachment.sha256) if attachment.stored == "file" else None
            if data is not None:
                found.append(OutgoingAttachment(attachment.filename, attachment.content_type, data))
        return found

    # --- to the team member --------------------------------------------------------------------

    def member_notice(self, session: Session, ticket: Ticket, member: TeamMember, request: Message, *,
                      kind: str, headline: str, text: str, now: datetime) -> OutboxItem:
        """A short notice that a reply did nothing ("Nothing sent", "Not done"), never quoting the reply."""
        rendered = self.renderer.render(
            "member_notice", ticket=ticket, member_name=member.name, headline=headline, text=text,
            token_days=self._token_days, support=self.config.support)
        mail = OutgoingMail(kind=kind, to=[member.email], subject=rendered.subject, text=rendered.text,
                            html=rendered.html, reply_to=self.tokens.unsigned_address(ticket.key),
                            in_reply_to=request.message_id, references=[*request.references, request.message_id],
                            auto_submitted="auto-replied")
        return enqueue(session, mail, key=f"{kind}:{short_key(request.message_id)}",
                       support=self.config.support, now=now, ticket_id=ticket.id)

    @property
    def _token_days(self) -> int:
        return round(self.tokens.lifetime.total_seconds() / 86400)

    def confirmation(self, session: Session, ticket: Ticket, member: TeamMember, request: Message,
                     done: Sequence[str], not_done: Sequence[tuple[str, str]], now: datetime) -> OutboxItem:
        """What the reply did, and what it did not do and why; Reply-To signed so they can try again."""
        tz = self.config.hypercare.tz
        rendered = self.renderer.render(
            "confirmation", ticket=ticket, member_name=member.name, done=list(done),
            not_done=[{"what": w, "why": y} for w, y in not_done], severity=severity_label(ticket.severity),
            role=role_label(ticket.role), status=status_label(ticket.status), response_due=ticket.response_due,
            commands=self.command_help, token_days=self._token_days,
            support=self.config.support, tz=tz)
        # Signed for the member when it is sent (tickets.tokens.sign_mail): nothing stored carries the token.
        mail = OutgoingMail(kind="confirmation", to=[member.email], subject=rendered.subject, text=rendered.text,
                            html=rendered.html, reply_to=self.tokens.unsigned_address(ticket.key),
                            in_reply_to=request.message_id, references=[*request.references, request.message_id],
                            auto_submitted="auto-replied")
        return enqueue(session, mail, key=f"confirmation:{short_key(request.message_id)}",
                       support=self.config.support, now=now, ticket_id=ticket.id)
