"""Open a new ticket from a mail: classify, start the SLA clock, store, tell the ``on_opened`` hooks.

Why one class: ticket, first message, audit events and outbox rows must commit
together (DESIGN step 7), and every path that opens a ticket (new mail, a stranger
quoting a tag, a late reply to a closed ticket) must do all of it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from classifier import Classifier, MailFacts
from config import Config
from intake.parse.message import ParsedMessage
from tickets.lifecycle import add_participant, allocate_key, choose_cc, record_event
from tickets.models import Message, Ticket
from tickets.sla import SlaPolicy

# (session, the new ticket, the mail that opened it, now): runs inside the ticket's transaction.
NewTicketHook = Callable[[Session, Ticket, Message, datetime], None]


class TicketOpener:
    def __init__(self, config: Config, classifier: Classifier, sla: SlaPolicy,
                 on_opened: tuple[NewTicketHook, ...] = ()) -> None:
        self.config = config
        self.classifier = classifier
        self.sla = sla
        # Wired in app.py: the acknowledgement to the reporter, then the immediate P1 page.
        self.on_opened = on_opened

    def open(self, session: Session, parsed: ParsedMessage, message: Message, now: datetime,
             linked: Ticket | None = None) -> Ticket:
        verdict = self.classifier.classify(MailFacts.from_parsed(parsed, now))
        number, key = allocate_key(session, self.config.support.ticket_prefix)
        ticket = Ticket(
            number=number, key=key, subject=parsed.subject, reporter=parsed.from_addr,
            reporter_name=parsed.from_name, severity=verdict.severity, role=verdict.role, status="new",
            created_at=now, updated_at=now, response_due=self.sla.response_due(verdict.severity, now),
            resolution_due=self.sla.resolution_due(verdict.severity, now),
            classification=verdict.to_json(), original_severity=verdict.severity,
            original_role=verdict.role, tags=list(verdict.tags), reopened_count=0,
            linked_ticket_id=linked.id if linked is not None else None,
        )
        session.add(ticket)
        message.ticket = ticket
        session.add(message)
        # Participants before the flush: the ticket is still pending, so its (empty) participant list
        # needs no lazy load, and they are inserted with the ticket.
        add_participant(session, ticket, parsed.from_addr, "reporter")
        copied = choose_cc(self.config, parsed.from_addr, parsed.cc + parsed.to)
        for address in copied.kept:
            add_participant(session, ticket, address, "cc")
        # No flush here: the event and the outbox rows hold the objects, so one flush stores them all.
        names = ", ".join(hit.name for hit in verdict.rules) or "no rule"
        record_event(session, ticket, "created", now, actor=parsed.from_addr,
                     detail=f"{verdict.severity} / {verdict.role} ({names})",
                     data={"rules": verdict.to_json(), "fallback": verdict.fallback}, message=message)
        if copied.outside or copied.over_cap:
            record_event(session, ticket, "participants_limited", now,
                         detail=f"{len(copied.outside) + len(copied.over_cap)} copied address(es) not added: "
                                f"{len(copied.outside)} outside the reporter's and the team's domains, "
                                f"{len(copied.over_cap)} over [replies] cc_limit {self.config.replies.cc_limit}",
                         data=copied.event_data(self.config.replies.cc_limit), message=message)
        if linked is not None:
            record_event(session, ticket, "linked", now, detail=f"linked to {linked.key}",
                         data={"ticket": linked.key}, message=message)
        for hook in self.on_opened:
            hook(session, ticket, message, now)
        return ticket
