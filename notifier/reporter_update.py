"""The "reporter update" notice: the team hears when the reporter (or someone they copied) writes again.

Why: without it a reporter's answer to a question, the log file they were asked for, or their
reopening of a resolved ticket sits in the database until somebody happens to look (RT and
Zammad both notify the owner on correspondence).  The notice goes to the ticket's assignee if
it has one, else to the members holding the ticket's role (``team_members_for``); it shows the
new message (quote-stripped), a short summary of the thread before it, the ticket's status,
severity and due time, and carries the ticket's signed ``Reply-To`` so the reader can answer
the reporter or act with ``#commands`` straight from it.

Why the guards sit here and not in the caller: it is ``ReporterReplies.notify_team`` (replies.reporter_reply), called
only for a mail that threaded into an open ticket or reopened a resolved one (ignored mail,
duplicates and ratings never get there); this module still refuses team members (their
replies are commands or answers, not news for the team) and anyone not taking part in the
ticket, and mails nobody when ``[[team]]`` is empty.  Idempotent per inbound Message-ID
(``reporter-update:<message-id>``): a re-delivered reply never notifies twice.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from config import Config
from notifier.mime import OutgoingMail
from notifier.outbox import short_key
from notifier.render import Renderer
from notifier.team_notice import (
    PUBLIC_SOURCES,
    Headline,
    TeamNotices,
    enqueue_per_member,
    team_headers,
    team_members_for,
)
from tickets.lifecycle import first_inbound, is_participant
from tickets.models import Message, OutboxItem, Ticket
from tickets.tokens import ReplyTokens

log = logging.getLogger("hypercare.reporter_update")

REPLY, RESUMED, REOPENED = "reply", "resumed", "reopened"
SUMMARY_LIMIT = 5  # earlier messages summarised, newest last
LINE_LIMIT = 160  # characters of each earlier message shown
BODY_LIMIT = 8000  # characters of the new message shown


def update_recipients(config: Config, ticket: Ticket) -> list[str]:
    """The assignee if set, else the members holding the ticket's role; nobody without a ``[[team]]``."""
    if not config.team:
        return []
    if ticket.assignee:
        return [ticket.assignee.lower()]
    return team_members_for(config, ticket)


class ReporterUpdates:
    """``ReporterReplies.notify_team``: queue the notice in the transaction that stored the reply."""

    def __init__(self, config: Config, renderer: Renderer, tokens: ReplyTokens, team: TeamNotices) -> None:
        self.config = config
        self.renderer = renderer
        self.tokens = tokens
        self.team = team  # for the shared team-mail context (labels, time left, commands)

    def __call__(self, session: Session, ticket: Ticket, message: Message, now: datetime,
                 kind: str) -> list[OutboxItem]:
        sender = message.from_addr
        if self.config.team_member(sender) is not None or not is_participant(ticket, sender):
            return []
        to = update_recipients(self.config, ticket)
        if not to:
            log.info("%s customer %s from %s: nobody in [[team]] to notify", ticket.key, kind, sender)
            return []
        who = message.from_name or sender
        rendered = self.renderer.render("reporter_update", **self.context(ticket, message, now, kind, who))
        first = first_inbound(ticket)
        references = [m.message_id for m in (first, message) if m is not None]
        mail = OutgoingMail(
            kind="reporter_update", to=to, subject=rendered.subject, text=rendered.text, html=rendered.html,
            reply_to=self.tokens.unsigned_address(ticket.key), in_reply_to=message.message_id,
            references=list(dict.fromkeys(references)), auto_submitted="auto-generated",
            extra_headers=team_headers(ticket),
        )
        items = enqueue_per_member(session, mail, key=f"reporter-update:{short_key(message.message_id)}",
                                   support=self.config.support, now=now, ticket_id=ticket.id)
        log.info("%s customer %s from %s: notified %s", ticket.key, kind, sender, ', '.join(to))
        return items

    def context(self, ticket: Ticket, message: Message, now: datetime, kind: str, who: str) -> dict[str, Any]:
        sender = f"{message.from_name} <{message.from_addr}>" if message.from_name else message.from_addr
        if kind == REOPENED:
            headline = Headline(f"Reopened by {who}",
                                f"{sender} reopened {ticket.key} by replying to the resolution "
                                f"(reopened {ticket.reopened_count}x).")
        elif kind == RESUMED:
            headline = Headline(f"Reply from {who}",
                                f"{sender} replied to {ticket.key}, which was waiting on the reporter: "
                                "the SLA clock runs again.")
        else:
            headline = Headline(f"Reply from {who}", f"{sender} replied to {ticket.key}.")
        context = self.team.context(ticket, headline, now, None)
        body = (message.body or "").strip()
        if len(body) > BODY_LIMIT:
            body = body[:BODY_LIMIT].rstrip() + " [...]"
        earlier, count = summary_before(ticket, message, {m.email.lower() for m in self.config.team})
        context.update(kind=kind, sender=sender, message=message, body=body, earlier=earlier, earlier_count=count,
                       attachments=[a.filename for a in message.attachments])
        return context


def _shown(ticket: Ticket, message: Message, team: set[str]) -> list[Message]:
    """What the reporter side wrote and what we answered them; team members' own mails (commands,
    notes) are left out: their effect is in the status lines and our answers."""
    return [m for m in ticket.messages if m.id != message.id and (
        (m.direction == "in" and m.disposition != "ignored" and m.from_addr.lower() not in team)
        or m.source in PUBLIC_SOURCES)]


def summary_before(ticket: Ticket, message: Message, team: set[str]) -> tuple[list[dict[str, Any]], int]:
    """One line per earlier message (newest last): when, who, its first words; and how many there are."""
    shown = _shown(ticket, message, team)
    items = []
    for m in shown[-SUMMARY_LIMIT:]:
        lines = (m.body or "").splitlines()
        cut = next((i for i, ln in enumerate(lines) if ln.rstrip() == "--"), len(lines))  # signature
        line = " ".join(" ".join(lines[:cut]).split())
        if len(line) > LINE_LIMIT:
            line = line[:LINE_LIMIT].rstrip() + " [...]"
        items.append({"at": m.received_at, "who": m.from_name or m.from_addr, "direction": m.direction,
                      "line": line or "(empty)"})
    return items, len(shown)
