"""Which reply rule answers a mail that joined an existing ticket: one literal, ordered table.

Why a table (GNU Mailman's chain of rules): the order *is* the policy, and a reader must see
it at a glance.  An ambiguous From (several people in one header) gets no authority at all, so it
goes first and is only a comment.  A rating of a resolved ticket must never reopen it, so ratings go first; a
team member's mail is never read as a reporter's, so the team goes next; a signed team
address used by an outsider (a forwarded notification) proves nothing about the sender, so
it is only a comment; only then does the ticket's state decide (closed: reopen or a new
linked ticket; open: the reporter adds information).  Each rule either answers with a
``ReplyOutcome`` or passes (None) to the next; the last rule always answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from sqlalchemy.orm import Session

from config import Config
from core.registry import Registry
from intake.parse.message import ParsedMessage
from intake.thread import ReplyOutcome, ThreadMatch
from replies.gratitude import is_thank_you
from replies.ratings import FeedbackDesk
from replies.reporter_reply import ReporterReplies
from replies.stakeholder_reply import StakeholderReplies
from replies.team_reply import TeamReplyHandler
from tickets.feedback import THANKS
from tickets.lifecycle import first_line, is_participant, record_event
from tickets.models import CLOSED_STATUSES, Message, OutboxItem, Ticket
from tickets.tokens import SignedCheck


@dataclass(frozen=True)
class Reply:
    """One inbound mail on one ticket, as every reply rule sees it."""

    session: Session
    match: ThreadMatch
    message: Message
    parsed: ParsedMessage
    now: datetime

    @property
    def ticket(self) -> Ticket:
        assert self.match.ticket is not None
        return self.match.ticket


class ReplyRule(Protocol):
    name: ClassVar[str]

    def answer(self, reply: Reply) -> ReplyOutcome | None: ...


class AmbiguousSender:
    """A From that names more than one person (``intake.parse.identity``) gets no authority: a comment only.

    Why first: ``From: ada@example.com <attacker@evil.test>`` must not act as Ada (team commands) nor as
    the reporter (reopen, resume the clock, rate); it is kept on the ticket and nothing changes.
    """

    name = "ambiguous-sender"

    def answer(self, reply: Reply) -> ReplyOutcome | None:
        if not reply.parsed.from_problem:
            return None
        reply.message.disposition = "comment"
        record_event(reply.session, reply.ticket, "comment", reply.now, actor=reply.parsed.from_addr,
                     detail=first_line(reply.parsed.body),
                     data={"reason": f"ambiguous From: {reply.parsed.from_problem}"},
                     message_row_id=reply.message.id)
        return ReplyOutcome("comment", reply.ticket, f"ambiguous From ({reply.parsed.from_problem}): "
                                                     "recorded as a comment, nothing changed")


class Rating:
    """A 1-5 rating answering a resolution notice (``replies.ratings``)."""

    name = "rating"

    def __init__(self, desk: FeedbackDesk) -> None:
        self.desk = desk

    def answer(self, reply: Reply) -> ReplyOutcome | None:
        return self.desk.handle(reply.session, reply.match, reply.message, reply.parsed, reply.now)


class TeamMember:
    """A configured team member: commands, a public answer, or a refusal (``replies.team_reply``)."""

    name = "team-member"

    def __init__(self, config: Config, handler: TeamReplyHandler) -> None:
        self.config = config
        self.handler = handler

    def answer(self, reply: Reply) -> ReplyOutcome | None:
        if self.config.team_member(reply.parsed.from_addr) is None:
            return None
        return self.handler(reply.session, reply.match, reply.message, reply.parsed, reply.now)


class ForwardedTeamMail:
    """A signed team address used by someone neither on the team nor on the ticket: a comment only."""

    name = "forwarded-team-mail"

    def __init__(self, config: Config) -> None:
        self.config = config

    def answer(self, reply: Reply) -> ReplyOutcome | None:
        sender = reply.parsed.from_addr
        if reply.match.via != "token" or self.config.team_member(sender) is not None \
                or is_participant(reply.ticket, sender):
            return None
        reply.message.disposition = "comment"
        record_event(reply.session, reply.ticket, "comment", reply.now, actor=sender,
                     detail=first_line(reply.parsed.body),
                     data={"reason": "signed reply from someone not on the team or the ticket"},
                     message_row_id=reply.message.id)
        return ReplyOutcome("comment", reply.ticket, "not on the team: recorded as a comment, nothing changed")


class ThankYou:
    """A short thank-you on a resolved ticket (``replies.gratitude``): recorded as positive feedback, quiet."""

    name = "thank-you"

    def answer(self, reply: Reply) -> ReplyOutcome | None:
        sender = reply.parsed.from_addr
        if reply.ticket.status not in CLOSED_STATUSES or not is_participant(reply.ticket, sender) \
                or not is_thank_you(reply.parsed.body):
            return None
        reply.message.disposition = "comment"
        record_event(reply.session, reply.ticket, THANKS, reply.now, actor=sender,
                     detail=first_line(reply.parsed.body), data={"positive": True},
                     message_row_id=reply.message.id)
        return ReplyOutcome("thanks", reply.ticket, "a thank-you: recorded as positive feedback, not reopened")


class ReplyToClosedTicket:
    """Reopen within ``reopen_days``; later (or from a stranger) a new ticket linked to the old one."""

    name = "closed-ticket"

    def __init__(self, reporter: ReporterReplies) -> None:
        self.reporter = reporter

    def answer(self, reply: Reply) -> ReplyOutcome | None:
        if reply.ticket.status not in CLOSED_STATUSES:
            return None
        return self.reporter.to_closed_ticket(reply.session, reply.ticket, reply.message, reply.parsed, reply.now)


class ReplyToOpenTicket:
    """The reporter or a cc adds information (and resumes a paused SLA clock). Always answers."""

    name = "open-ticket"

    def __init__(self, reporter: ReporterReplies) -> None:
        self.reporter = reporter

    def answer(self, reply: Reply) -> ReplyOutcome | None:
        return self.reporter.to_open_ticket(reply.session, reply.ticket, reply.message, reply.parsed, reply.now,
                                            reply.match.via)


class ReplyRouter:
    """``intake.thread.ReplyHandling``: the first rule of the table that answers decides."""

    def __init__(self, config: Config, ratings: FeedbackDesk, team: TeamReplyHandler,
                 reporter: ReporterReplies, stakeholders: StakeholderReplies | None = None) -> None:
        self.stakeholders = stakeholders
        self.rules: Registry[ReplyRule] = Registry("reply rule", (
            AmbiguousSender(),
            Rating(ratings),
            TeamMember(config, team),
            ForwardedTeamMail(config),
            ThankYou(),
            ReplyToClosedTicket(reporter),
            ReplyToOpenTicket(reporter),
        ))

    def handle(self, session: Session, match: ThreadMatch, message: Message, parsed: ParsedMessage,
               now: datetime) -> ReplyOutcome | None:
        reply = Reply(session, match, message, parsed, now)
        for rule in self.rules:
            outcome = rule.answer(reply)
            if outcome is not None:
                return outcome
        return None

    def about_our_mail(self, session: Session, sent: OutboxItem, message: Message, parsed: ParsedMessage,
                       now: datetime, exit_token: SignedCheck | None = None) -> str:
        """A reply to a digest: the project managers get it as a comment (``replies.stakeholder_reply``)."""
        if self.stakeholders is None:
            return f"reply to {sent.kind}: kept as a comment"
        return self.stakeholders(session, sent, message, parsed, now, exit_token)
