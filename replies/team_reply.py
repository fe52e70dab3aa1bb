"""A team member's reply to a ticket: commands, a public answer, or a comment that changes nothing.

Why the checks sit here, before anything acts (DESIGN "Reply commands"): the sender's
address alone can be forged, so a reply acts only when it comes from a configured team
member *and* carries this ticket's signed token (``ThreadMatch.token_valid``: the
plus-address we put in ``Reply-To``, or the signed subject tag).  Anything else from a
team member is recorded as a comment and nothing changes; the member is told what was
not done and why (their own mailbox is the only place that refusal goes, so a forger
learns nothing).  This is the ``team-member`` rule of ``replies.router``; it answers every team member's
reply, so a team mail never reopens a ticket or opens a new one.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from config import Config, TeamMember
from intake.parse.message import ParsedMessage
from intake.thread import ReplyOutcome, ThreadMatch
from notifier.escalation import Escalator
from notifier.notices import Notices
from replies.command_effects import ACTIONS, ActContext
from replies.command_syntax import ReplyCommands, parse_reply_commands
from tickets.lifecycle import first_line, record_event, reporter_recipients
from tickets.models import CLOSED_STATUSES, Message, Ticket
from tickets.sla import SlaPolicy

log = logging.getLogger("hypercare.intake")


class TeamReplyHandler:
    def __init__(self, config: Config, sla: SlaPolicy, notices: Notices, escalator: Escalator) -> None:
        self.config = config
        self.sla = sla
        self.notices = notices
        self.escalator = escalator

    def __call__(self, session: Session, match: ThreadMatch, message: Message, parsed: ParsedMessage,
                 now: datetime) -> ReplyOutcome | None:
        member = self.config.team_member(parsed.from_addr)
        ticket = match.ticket
        if member is None or ticket is None:
            return None
        reply = parse_reply_commands(parsed.body)
        if not match.token_valid:
            return self._refuse(session, ticket, member, message, reply, now, unsigned=match.token_problem or (
                f"the reply did not carry {ticket.key}'s signed reply address, so it cannot act; reply to the "
                f"latest mail this desk sent you about {ticket.key} (its Reply-To is yours alone)"))
        if not reply.ok:
            return self._refuse(session, ticket, member, message, reply, now, unsigned="")
        return self._act(session, ticket, member, message, reply, now)

    def _act(self, session: Session, ticket: Ticket, member: TeamMember, message: Message,
             reply: ReplyCommands, now: datetime) -> ReplyOutcome:
        ctx = ActContext(session=session, config=self.config, sla=self.sla, escalator=self.escalator,
                         notices=self.notices, ticket=ticket, member=member, message=message, now=now, reply=reply)
        for command in ACTIONS.in_order(reply.commands):
            ACTIONS[command.name].apply(ctx, command)
        if reply.text and reply.named("note") is None and reply.named("resolve") is None:
            self._answer(ctx, reply.text)
        for step in ctx.after:
            step()
        if not reply.commands and not reply.text:
            ctx.not_done.append(("(empty reply)", "no command and no text found above the quoted part"))
        if not ctx.done:
            message.disposition = "comment"
            record_event(session, ticket, "comment", now, actor=member.email, detail=first_line(reply.text),
                         data={"reason": "nothing to do"}, message_row_id=message.id)
        if ctx.not_done or self.config.notifier.confirmations == "all":
            # Issue 14: a "Done:" mail for every #ack was a third of the on-call member's mail; what was
            # done is in the audit events (``show``), and a refusal or a partial refusal is always mailed.
            self.notices.confirmation(session, ticket, member, message, ctx.done, ctx.not_done, now)
        summary = ", ".join([*(f"#{c.name}" for c in reply.commands), *(["answer"] if reply.text else [])])
        log.info("%s team reply by %s: %s", ticket.key, member.email, summary or 'empty')
        return ReplyOutcome("command", ticket, f"by {member.email}: {summary or 'nothing'}")

    def _answer(self, ctx: ActContext, text: str) -> None:
        ticket = ctx.ticket
        ctx.notices.public_answer(ctx.session, ticket, ctx.member, text, ctx.message, ctx.now)
        to = reporter_recipients(self.config, ticket)
        ctx.event("answered", first_line(text), {"to": to, "public": True})
        ctx.done.append(f"your answer was sent to {', '.join(to)}")
        ctx.first_response()
        if ticket.status in ("new", "acknowledged"):
            ticket.status = "in_progress"

    def _refuse(self, session: Session, ticket: Ticket, member: TeamMember, message: Message,
                reply: ReplyCommands, now: datetime, *, unsigned: str) -> ReplyOutcome:
        """Record the reply as a comment; tell the member what was not done and why.

        *unsigned*: why the reply carried no authority ("" when it did, but a line could not be read).
        """
        message.disposition = "comment"
        not_done: list[tuple[str, str]] = []
        if unsigned:
            why = unsigned
            not_done += [(c.line, why) for c in reply.commands]
            not_done += [(p.line, why) for p in reply.problems]
            if reply.text and reply.named("note") is None:
                not_done.append(("your text", f"recorded as an internal comment and NOT sent to the reporter: {why}"))
            reason = f"no valid token: {why}"
        else:
            not_done += [(p.line, p.reason) for p in reply.problems]
            not_done.append(("everything else in this reply", "nothing was changed and nothing was sent to the "
                                                              "reporter, because a line above could not be read; "
                                                              "send the reply again without the mistake"))
            reason = "; ".join(p.reason for p in reply.problems)
        record_event(session, ticket, "comment", now, actor=member.email, detail=first_line(reply.text) or
                     "; ".join(c.line for c in reply.commands)[:200],
                     data={"reason": reason, "commands": [c.line for c in reply.commands],
                           "problems": [p.reason for p in reply.problems]},
                     message_row_id=message.id)
        if not_done:
            self.notices.confirmation(session, ticket, member, message, [], not_done, now)
        log.info("%s team reply by %s refused: %s", ticket.key, member.email, reason)
        state = "closed ticket" if ticket.status in CLOSED_STATUSES else "ticket"
        return ReplyOutcome("comment", ticket, f"{state}, {member.email}: {reason}; nothing changed")

