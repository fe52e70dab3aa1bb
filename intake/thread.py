"""Decide which ticket an incoming mail belongs to (DESIGN "How a message flows", step 5).

Order, strongest evidence first: a signed reply address (or signed subject tag),
then In-Reply-To/References naming a message of a ticket, then a ``[HC-n]`` subject
tag or plus-address, which counts only when the sender already takes part in that
ticket.  A stranger quoting someone else's tag gets a new ticket linked to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config
from intake.parse.message import ParsedMessage
from tickets.lifecycle import find_by_key, is_participant
from tickets.models import Message, OutboxItem, Ticket
from tickets.tokens import ReplyTokens, SignedCheck

EXIT_REPORT = "exit_report"  # the outbox kind of the exit report (notifier.digests)
DECISION_RECORDED = "exit decision recorded"  # how about_our_mail's answer starts when a #decision acted


@dataclass(frozen=True)
class ThreadMatch:
    ticket: Ticket | None  # the ticket the mail joins; None = open a new ticket
    via: str  # token | references | tag | none
    token_valid: bool = False  # the mail carried this ticket's signed token, valid for its sender
    token_problem: str = ""  # why a genuine token did not count (expired, minted for someone else)
    linked: Ticket | None = None  # for a new ticket: the ticket it was quoting
    # A reply to the exit report's signed address (issue 16): the check of its token (valid, expired,
    # minted for another project manager); the replies room records a #decision only when it is valid.
    exit_report: SignedCheck | None = None


@dataclass(frozen=True)
class ReplyOutcome:
    """What a mail that joined an existing ticket did to it (the ingest line reports it)."""

    action: str  # threaded | reopened | created | command | comment | feedback | feedback-rejected
    ticket: Ticket
    detail: str = ""


class ReplyHandling(Protocol):
    """What the pipeline asks about a mail that joined a ticket; ``replies.ReplyRouter`` answers.

    Why a protocol: what a reply *means* (a team command, a rating, a reopening) is the replies
    room's business and sends mail; the pipeline only stores the message and reports the outcome,
    so intake never imports the notifier.
    """

    def handle(self, session: Session, match: ThreadMatch, message: Message, parsed: ParsedMessage,
               now: datetime) -> ReplyOutcome | None: ...

    def about_our_mail(self, session: Session, sent: OutboxItem, message: Message, parsed: ParsedMessage,
                       now: datetime, exit_token: SignedCheck | None = None) -> str:
        """A reply to a mail we sent that belongs to no ticket (a digest): never a new ticket (issue 14);
        *exit_token*: the exit report's signed address it was sent to, checked (issue 16)."""
        ...


def replied_untracked_mail(session: Session, parsed: ParsedMessage) -> OutboxItem | None:
    """Our mail without a ticket (a stakeholder digest) that *parsed* answers, by In-Reply-To/References."""
    ids = [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i][:50]
    if not ids:
        return None
    return session.scalar(select(OutboxItem).where(OutboxItem.message_id.in_(ids), OutboxItem.ticket_id.is_(None))
                          .order_by(OutboxItem.id.desc()).limit(1))


def exit_report_replied(session: Session, parsed: ParsedMessage) -> OutboxItem | None:
    """The exit report a reply to its signed address answers: the one it references, else the latest."""
    sent = replied_untracked_mail(session, parsed)
    if sent is not None and sent.kind == EXIT_REPORT:
        return sent
    return session.scalar(select(OutboxItem).where(OutboxItem.kind == EXIT_REPORT, OutboxItem.ticket_id.is_(None))
                          .order_by(OutboxItem.id.desc()).limit(1))


def find_thread(session: Session, parsed: ParsedMessage, config: Config, tokens: ReplyTokens,
                now: datetime) -> ThreadMatch:
    signed = tokens.find_signed(parsed.all_recipients, parsed.subject, parsed.from_addr, now,
                                [m.email for m in config.team])
    if signed is not None and signed.genuine and tokens.is_exit_key(signed.key):
        # The exit report's signed address: no ticket; whether it acts is the replies room's decision.
        return ThreadMatch(None, "token", token_valid=signed.valid, token_problem=signed.reason(parsed.from_addr),
                           exit_report=signed)
    if signed is not None and signed.genuine:
        ticket = find_by_key(session, signed.key)
        if ticket is not None:
            # A token we minted names its ticket; it authorises only its own member, until it expires.
            return ThreadMatch(ticket, "token", token_valid=signed.valid,
                               token_problem=signed.reason(parsed.from_addr))
    # A forged token proves nothing: fall through to the weaker evidence.

    ids = [i for i in [parsed.in_reply_to, *reversed(parsed.references)] if i]
    if ids:
        ticket_id = session.scalar(
            select(Message.ticket_id)
            .where(Message.message_id.in_(ids[:50]), Message.ticket_id.is_not(None))
            .order_by(Message.id.desc())
            .limit(1)
        )
        if ticket_id is not None:
            ticket = session.get(Ticket, ticket_id)
            if ticket is not None and _may_join(ticket, parsed.from_addr, config):
                return ThreadMatch(ticket, "references")
            if ticket is not None:
                return ThreadMatch(None, "none", linked=ticket)

    keys = [k for k in [tokens.plus_key(parsed.all_recipients), *tokens.subject_keys(parsed.subject)] if k]
    linked: Ticket | None = None
    for key in keys:
        ticket = find_by_key(session, key)
        if ticket is None:
            continue
        if _may_join(ticket, parsed.authority_address, config):
            return ThreadMatch(ticket, "tag")
        linked = linked or ticket
    return ThreadMatch(None, "none", linked=linked)


def _may_join(ticket: Ticket, sender: str, config: Config) -> bool:
    """Reporter, cc'd people and the team may add to a ticket; strangers (and ambiguous senders: "") may not."""
    return bool(sender) and (is_participant(ticket, sender) or config.team_member(sender) is not None)
