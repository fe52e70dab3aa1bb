"""A team member's reply to a ticket: commands, a public answer, or a comment that changes nothing.

Why the checks sit here, before anything acts (DESIGN "Reply commands"): the sender's
address alone can be forged, so a reply acts only when it comes from a configured team
member *and* carries the token this desk signed for that member and this ticket, not yet
expired (``ThreadMatch.token_valid``, ``tickets.tokens``).  Anything else from a team member
is a ``refused`` event and nothing changes; the member is told what was not done and why
(their configured address is the only place that refusal goes, so a forger learns nothing).
This is the ``team-member`` rule of ``replies.router``; it answers every team member's reply,
so a team mail never reopens a ticket or opens a new one.

Why only the new text (issue 13): the reporter must get what the member *wrote*, never the
quoted escalation with its classifier reasons; ``intake.parse.quotes.new_text`` keeps the text
above the quote, and a reply with none (a bare ``>`` quote, an Outlook reply with nothing typed
above ``From:/Sent:``) sends nothing, is no first response, and gets one short "nothing sent".

Why refusals are quiet: a refusal goes to the address in ``From``, which a forger chooses; so a
refusal never quotes the refused text, and a sender hears at most one refusal per hour
(``REFUSAL_QUIET``).  Every refusal is still a ``refused`` event on the ticket (``status`` counts
them).  A reply that carried the member's valid token but a mistyped command is not throttled:
only the member's own mailbox could send it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config, TeamMember
from intake.parse.message import ParsedMessage
from intake.parse.quotes import new_text
from intake.thread import ReplyOutcome, ThreadMatch
from notifier.escalation import Escalator
from notifier.notices import Notices
from replies.command_effects import ACTIONS, ActContext
from replies.command_syntax import ReplyCommands, parse_reply_commands
from tickets.lifecycle import REFUSED, first_line, record_event, reporter_recipients
from tickets.models import CLOSED_STATUSES, Event, Message, Ticket
from tickets.sla import SlaPolicy

log = logging.getLogger("hypercare.intake")

REFUSAL_QUIET = timedelta(hours=1)  # a sender hears at most one refusal per this time
NOTHING_SENT = "your reply had no text of its own (only the quoted mail), so nothing was sent to the reporter"


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
        reply = parse_reply_commands(new_text(parsed.body_full or parsed.body))
        if not match.token_valid:
            why = match.token_problem or (
                f"the reply did not carry {ticket.key}'s signed reply address for {member.email}, so it cannot act")
            return self._refuse(session, ticket, member, message, reply, now, why, throttle=True)
        if not reply.ok:
            why = "a line could not be read (" + "; ".join(p.reason[:200] for p in reply.problems[:5]) + \
                  "), so the whole reply was refused; send it again without the mistake"
            return self._refuse(session, ticket, member, message, reply, now, why, throttle=False)
        if not reply.commands and not reply.text:
            return self._nothing_sent(session, ticket, member, message, now)
        return self._act(session, ticket, member, message, reply, now)

    def _act(self, session: Session, ticket: Ticket, member: TeamMember, message: Message,
             reply: ReplyCommands, now: datetime) -> ReplyOutcome:
        ctx = ActContext(session=session, config=self.config, sla=self.sla, escalator=self.escalator,
                         notices=self.notices, ticket=ticket, member=member, message=message, now=now, reply=reply)
        for command in ACTIONS.in_order(reply.commands):
            ACTIONS[command.name].apply(ctx, command)
        internal = any(reply.named(name) is not None for name in ("note", "resolve", "decision", "update"))
        if reply.text and not internal:
            self._answer(ctx, reply.text)
        for step in ctx.after:
            step()
        if not ctx.done:
            message.disposition = "comment"
            record_event(session, ticket, "comment", now, actor=member.email, detail=first_line(reply.text),
                         data={"reason": "nothing to do"}, message_row_id=message.id)
        if ctx.not_done or self.config.notifier.confirmations == "all":
            # Issue 14: a "Done:" mail for every #ack was a third of the on-call member's mail; what was
            # done is in the audit events (``show``), and a refusal or a partial refusal is always mailed.
            self.notices.confirmation(session, ticket, member, message, ctx.done, ctx.not_done, now)
        summary = ", ".join([*(f"#{c.name}" for c in reply.commands), *(["answer"] if reply.text else [])])
        log.info("%s team reply by %s: %s", ticket.key, member.email, summary)
        return ReplyOutcome("command", ticket, f"by {member.email}: {summary}")

    def _answer(self, ctx: ActContext, text: str) -> None:
        ticket = ctx.ticket
        ctx.notices.public_answer(ctx.session, ticket, ctx.member, text, ctx.message, ctx.now)
        to = reporter_recipients(self.config, ticket)
        ctx.event("answered", first_line(text), {"to": to, "public": True})
        ctx.done.append(f"your answer was sent to {', '.join(to)}")
        ctx.first_response()
        if ticket.status in ("new", "acknowledged"):
            ticket.status = "in_progress"

    def _nothing_sent(self, session: Session, ticket: Ticket, member: TeamMember, message: Message,
                      now: datetime) -> ReplyOutcome:
        """A reply with no text of its own: nothing to the reporter, no first response, one short notice."""
        message.disposition = "comment"
        record_event(session, ticket, "comment", now, actor=member.email, detail="(no text of its own)",
                     data={"reason": "no text of its own: nothing sent"}, message_row_id=message.id)
        self.notices.member_notice(session, ticket, member, message, kind="nothing_sent", headline="Nothing sent",
                                   text=NOTHING_SENT, now=now)
        log.info("%s team reply by %s: no text of its own, nothing sent", ticket.key, member.email)
        return ReplyOutcome("comment", ticket, f"by {member.email}: no text of its own; nothing sent")

    def _refuse(self, session: Session, ticket: Ticket, member: TeamMember, message: Message,
                reply: ReplyCommands, now: datetime, why: str, *, throttle: bool) -> ReplyOutcome:
        """Record the refusal on the ticket; tell the sender why, at most once an hour, never quoting them.

        *throttle*: the reply carried no authority (its From may be forged), so its sender is
        answered at most once per ``REFUSAL_QUIET``.
        """
        message.disposition = "comment"
        answer = not throttle or not self._refused_recently(session, member.email, now)
        record_event(session, ticket, REFUSED, now, actor=member.email, detail=why[:500],
                     data={"reason": why, "answered": answer, "commands": [c.line[:200] for c in reply.commands],
                           "problems": [p.reason for p in reply.problems], "had_text": bool(reply.text)},
                     message_row_id=message.id)
        if answer:
            text = f"{why}. Nothing was changed and nothing was sent to the reporter"
            if throttle:
                text += "; further refused replies from you within the hour are recorded but not answered"
            self.notices.member_notice(session, ticket, member, message, kind="refusal", headline="Not done",
                                       text=text, now=now)
        log.info("%s team reply by %s refused (%s): %s", ticket.key, member.email,
                 "answered" if answer else "quiet", why)
        state = "closed ticket" if ticket.status in CLOSED_STATUSES else "ticket"
        return ReplyOutcome("comment", ticket, f"{state}, {member.email}: refused: {why[:200]}; nothing changed")

    @staticmethod
    def _refused_recently(session: Session, sender: str, now: datetime) -> bool:
        """Was *sender* answered a refusal within ``REFUSAL_QUIET`` (on any ticket)?"""
        rows = session.scalars(select(Event.data).where(
            Event.kind == REFUSED, Event.actor == sender, Event.at > now - REFUSAL_QUIET))
        return any((data or {}).get("answered") for data in rows)
