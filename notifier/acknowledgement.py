"""The acknowledgement a reporter receives when their mail opens a ticket.

Why a class of its own: it is the first promise the desk makes (severity, first
response time, owner role, how to reply), so its content is assembled in one place
and enqueued in the same transaction as the ticket, one ticket at a time (``enqueue``,
the ``on_opened`` hook) or for a whole batch of new tickets (``batch_rows``, wired in app.py as the
hook's ``intake.opening.BatchForm``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table
from sqlalchemy.orm import Session

from config import Config
from notifier.labels import role_label, severity_label
from notifier.language import detect_language
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue, outgoing_rows, queued_keys, short_key
from notifier.render import Renderer
from tickets.incidents import is_follow_up, latest_update
from tickets.lifecycle import opened_in_flood
from tickets.models import Incident, Message, OutboxItem, Ticket
from tickets.public_text import IncidentPeople, public_line

_OUTBOX: Table = OutboxItem.__table__  # type: ignore[assignment]
_MESSAGES: Table = Message.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class PublicUpdate:
    """An ``#update`` as the "known issue" acknowledgement quotes it (redacted, one line)."""

    at: datetime
    text: str


class NewTicket(Protocol):
    """A new ticket as column values (``intake.opening.OpenedTicket``; notifier never imports intake)."""

    ticket: dict[str, Any]  # the tickets row, with its id and key
    request: dict[str, Any]  # the messages row of the mail that opened it
    language: str  # the reporter's language if already known (computed in the parse worker), else ""


class Acknowledger:
    def __init__(self, config: Config, renderer: Renderer, target_label: Callable[[str], str]) -> None:
        self.config = config
        self.renderer = renderer
        self.target_label = target_label
        # An incident's reporters' names and title words, kept per incident (a storm's later reports).
        self.people = IncidentPeople((m.name, m.email) for m in config.team)

    def enqueue(self, session: Session, ticket: Ticket, request: Message, now: datetime) -> None:
        """The ``on_opened`` hook; a later report of a known incident (``tickets.incidents``) gets the
        "known issue" acknowledgement: the problem is known and being worked on, with the latest ``#update``.
        (The batch path never sees such a report: ``IncidentGrouper.batch_accepts`` refuses it.)"""
        if opened_in_flood(ticket):
            return  # a P1 past the sender's flood limit: paged, but the flood rule holds for the reporter
        mail = self.mail(ticket, request, ticket.incident if is_follow_up(ticket) else None)
        # The ticket may not be flushed yet (TicketOpener): pass the object, let its flush store all.
        enqueue(session, mail, key=self.key(request.message_id), support=self.config.support,
                now=now, ticket=ticket, flush=False)

    def batch_rows(self, session: Session, opened: Sequence[NewTicket],
                   now: datetime) -> Iterator[tuple[Table, dict[str, Any]]]:
        """The outbox and outbound message rows of many acknowledgements: one key look-up for all."""
        queued = queued_keys(session, [self.key(o.request["message_id"]) for o in opened])
        for new in opened:
            key = self.key(new.request["message_id"])
            if key in queued:
                continue  # acknowledged before (same as ``enqueue`` finding the key)
            mail = self.mail(new.ticket, new.request, language=new.language)
            item, outbound = outgoing_rows(mail, key=key, support=self.config.support, now=now,
                                           ticket_id=new.ticket["id"])
            yield _OUTBOX, item
            yield _MESSAGES, outbound

    def public_facts(self, incident: Incident | None) -> tuple[str, PublicUpdate | None, int]:
        """The incident's neutral title, its latest ``#update`` as one redacted line and its number of
        reports: what the status page shows (``tickets.public_text``), not the stored title, which is the
        first reporter's subject ("Maria's CRM is down"); every later reporter reads this mail. The names
        (every reporter's and the team's) are kept per incident (``IncidentPeople``)."""
        if incident is None:
            return "", None, 0
        title, parts, reports = self.people.facts(incident, role_label(incident.role))
        update = latest_update(incident)
        if update is None:
            return title, None, reports
        return title, PublicUpdate(at=update.at, text=public_line(update.text, parts=parts)), reports

    @staticmethod
    def key(request_message_id: str) -> str:
        return f"ack:{short_key(request_message_id)}"

    def mail(self, ticket: Ticket | Mapping[str, Any], request: Message | Mapping[str, Any],
             incident: Incident | None = None, *, language: str = "") -> OutgoingMail:
        """The acknowledgement of *ticket* opened by *request*: objects, or their column values
        (the template reads both alike), in the reporter's language (``notifier.language``; *language*
        when it is known already: ``detect_language`` of the same subject and body, done in the parse worker)."""
        request_message_id = _field(request, "message_id")
        tz = self.config.hypercare.tz
        severity = _field(ticket, "severity")
        response_due = _field(ticket, "response_due")
        kind = "ack" if incident is None else "ack_known"
        incident_title_text, update, reports = self.public_facts(incident)
        lang = language or detect_language(_field(request, "subject"), _field(request, "body"))
        context = dict(
            incident=incident,
            incident_title=incident_title_text,
            reports=reports,
            update=update,
            severity=severity_label(severity),
            role=role_label(_field(ticket, "role")),
            response_target=self.target_label(severity),
            response_due=response_due.astimezone(tz) if response_due else None,
            support=self.config.support,
            tz=tz,
            # The public status page ([dashboard] public_status_url, validated http/https without line breaks).
            status_url=self.config.dashboard.public_status_url if incident is not None else "",
        )
        if isinstance(ticket, dict) and isinstance(request, dict):  # the batched write path: column values
            rendered = self.renderer.render_rows(kind, lang, {"ticket": ticket, "request": request}, **context)
        else:
            rendered = self.renderer.render(kind, lang, ticket=ticket, request=request, **context)
        return OutgoingMail(
            kind=kind,
            to=[_field(ticket, "reporter")],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            in_reply_to=request_message_id,
            references=[*_field(request, "references"), request_message_id],
            auto_submitted="auto-replied",
        )


def _field(row: Ticket | Message | Mapping[str, Any], name: str) -> Any:
    return row[name] if isinstance(row, Mapping) else getattr(row, name)
