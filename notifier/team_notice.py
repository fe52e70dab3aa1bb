"""The mail a team member gets about a ticket: an escalation, a new P1, an assignment.

Why one builder: every such mail must let the reader act without opening anything
else (ticket, reporter, the classifier's reasons, time left or overdue, the thread so
far, the reply commands), and every one carries the ticket's signed reply address as
``Reply-To`` so that answering it is what authorises the commands in the answer.

Why one mail per member: the signed address is that member's credential (``tickets.tokens``),
so a mail to three people is three mails, each signed for its reader when it is sent; what is
stored carries only the unsigned placeholder, and the text never prints the address.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from config import Config, SupportSettings, TeamMember
from notifier.labels import role_label, severity_label, status_label
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue
from notifier.render import Renderer
from notifier.send_time import FILL_HEADER, INCIDENT, incident_marker
from tickets.lifecycle import first_inbound
from tickets.models import OutboxItem, Ticket
from tickets.response_clock import describe_left
from tickets.sla import SlaPolicy
from tickets.tokens import ReplyTokens
from tickets.views import triage_lines

THREAD_LIMIT = 10  # messages shown in the mail, newest last
BODY_LIMIT = 2000  # characters per message shown
PUBLIC_SOURCES = ("outbox:answer", "outbox:resolved")  # our mails the reporter saw from a person


@dataclass(frozen=True)
class Headline:
    """What happened, in words: subject prefix and first line of the mail."""

    short: str  # "Escalation 80%", "New P1", "Assigned to you"
    long: str  # one sentence for the top of the mail


def enqueue_per_member(session: Session, mail: OutgoingMail, *, key: str, support: SupportSettings,
                       now: datetime, ticket_id: int) -> list[OutboxItem]:
    """Queue *mail* once per recipient (``<key>><address>``): each gets a Reply-To signed for them alone."""
    items = []
    for address in dict.fromkeys(a.lower() for a in mail.to):
        member_key = f"{key}>{address}"
        if len(member_key) > 200:
            member_key = f"{key[:150]}>{hashlib.sha256(address.encode()).hexdigest()[:40]}"
        items.append(enqueue(session, dataclasses.replace(mail, to=[address]), key=member_key, support=support,
                             now=now, ticket_id=ticket_id))
    return items


def team_members_for(config: Config, ticket: Ticket, *, on_call: bool = False, managers: bool = False,
                     role: str | None = None) -> list[str]:
    """Addresses, in [[team]] order, of the role's members (+ assignee, on-call, project managers)."""
    wanted_role = role or ticket.role
    chosen: dict[str, None] = {}
    for member in config.team:
        if wanted_role in member.roles or (on_call and member.on_call) or (
                managers and "project_manager" in member.roles):
            chosen.setdefault(member.email.lower(), None)
    if ticket.assignee and role is None:
        chosen.setdefault(ticket.assignee.lower(), None)
    return list(chosen)


class TeamNotices:
    def __init__(self, config: Config, renderer: Renderer, tokens: ReplyTokens, sla: SlaPolicy,
                 command_help: Sequence[str] = ()) -> None:
        self.config = config
        self.command_help = tuple(command_help)  # the reply commands' help lines (replies.command_syntax)
        self.renderer = renderer
        self.tokens = tokens
        self.sla = sla

    def enqueue(self, session: Session, ticket: Ticket, *, kind: str, headline: Headline, to: Sequence[str],
                key: str, now: datetime, actor: TeamMember | None = None) -> list[OutboxItem]:
        """Render the team mail for *ticket* and queue it once per member under *key*; [] when nobody to tell."""
        if not to:
            return []
        rendered = self.renderer.render("escalation", **self.context(ticket, headline, now, actor))
        first = first_inbound(ticket)
        mail = OutgoingMail(
            kind=kind, to=list(to), subject=rendered.subject, text=rendered.text, html=rendered.html,
            reply_to=self.tokens.unsigned_address(ticket.key),
            in_reply_to=first.message_id if first is not None else None,
            references=[first.message_id] if first is not None else [],
            auto_submitted="auto-generated",
            extra_headers=team_headers(ticket),
        )
        return enqueue_per_member(session, mail, key=key, support=self.config.support, now=now, ticket_id=ticket.id)

    def context(self, ticket: Ticket, headline: Headline, now: datetime,
                actor: TeamMember | None) -> dict[str, Any]:
        tz = self.config.hypercare.tz
        return {
            "ticket": ticket,
            "headline": headline,
            "actor": actor,
            "severity": severity_label(ticket.severity),
            "role": role_label(ticket.role),
            "status": status_label(ticket.status),
            "response_target": self.sla.target_label(ticket.severity),
            "response_due": ticket.response_due,
            "time_left": self._time_left(ticket, now),
            "overdue": ticket.response_due is not None and ticket.first_response_at is None
            and now >= ticket.response_due,
            "reasons": [
                {"name": hit.get("name", ""), "description": hit.get("description", ""),
                 "evidence": list(hit.get("evidence", []))}
                for hit in ticket.classification or []
            ],
            "triage": triage_lines(ticket.triage),
            "uncertain": bool(ticket.uncertain),
            "thread": thread_of(ticket),
            # The incident's reports as they are when the mail leaves (notifier.send_time), not as queued.
            "incident_marker": incident_marker(ticket.key) if may_be_incident(ticket) else None,
            "commands": self.command_help,
            "token_days": round(self.tokens.lifetime.total_seconds() / 86400),
            "support": self.config.support,
            "tz": tz,
        }

    def _time_left(self, ticket: Ticket, now: datetime) -> str:
        if ticket.first_response_at is not None:
            return "answered" + (" in time" if ticket.response_met else " late")
        if ticket.paused_at is not None:
            return "paused (waiting on the reporter)"
        return describe_left(self.sla, ticket.severity, ticket.response_due, now)


def team_headers(ticket: Ticket) -> dict[str, str]:
    """The headers of a team mail about *ticket*; one that may show incident facts asks for them at send time."""
    headers = {"X-Hypercare-Ticket": ticket.key, "X-Hypercare-Severity": ticket.severity}
    if may_be_incident(ticket):
        headers[FILL_HEADER] = INCIDENT
    return headers


def may_be_incident(ticket: Ticket) -> bool:
    """Whether a team mail about *ticket* shows incident facts: it is in one, or it is a P1 (an outage's
    first report is paged before anyone else reports it)."""
    return ticket.incident is not None or ticket.severity == "P1"


def thread_of(ticket: Ticket) -> list[dict[str, Any]]:
    """What a person wrote on the ticket: inbound mail and our human answers, newest last."""
    shown = [m for m in ticket.messages
             if (m.direction == "in" and m.disposition != "ignored") or m.source in PUBLIC_SOURCES]
    items = []
    for m in shown[-THREAD_LIMIT:]:
        body = (m.body or "").strip()
        if len(body) > BODY_LIMIT:
            body = body[:BODY_LIMIT].rstrip() + " [...]"
        items.append({
            "at": m.received_at,
            "who": f"{m.from_name} <{m.from_addr}>" if m.from_name else m.from_addr,
            "direction": m.direction,
            "subject": m.subject,
            "body": body,
            "attachments": [a.filename for a in m.attachments],
        })
    return items

