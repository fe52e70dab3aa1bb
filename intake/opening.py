"""Open a new ticket from a mail: classify, start the SLA clock, store, tell the ``on_opened`` hooks.

Why one class: ticket, first message, audit events and outbox rows must commit
together (DESIGN step 7), and every path that opens a ticket (new mail, a stranger
quoting a tag, a late reply to a closed ticket, the batched write path) must do all of
it the same way: ``plan`` decides every value once, ``open`` stores a plan as ORM
objects, ``intake.batch_store`` stores many plans with one statement per table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from classifier import Classifier, MailFacts, Verdict
from config import Config
from intake.parse.message import ParsedMessage
from tickets.incidents import grouping_facts
from tickets.lifecycle import FLOOD_OPENED, add_participant, allocate_key, choose_cc, record_event
from tickets.models import Message, Ticket
from tickets.sla import SlaPolicy

# (session, the new ticket, the mail that opened it, now): runs inside the ticket's transaction.
NewTicketHook = Callable[[Session, Ticket, Message, datetime], None]


@dataclass
class OpenedTicket:
    """A new ticket as plain values: what ``open`` stores as objects and the batch path as rows.

    ``ticket`` holds the ``tickets`` columns (``id``, ``number`` and ``key`` once allocated),
    ``request`` the opening mail's ``messages`` columns (``id`` once inserted).
    """

    parsed: ParsedMessage
    verdict: Verdict
    ticket: dict[str, Any]
    participants: list[tuple[str, str]]  # (lower-case address, reporter | cc)
    events: list[tuple[str, str, str, dict[str, Any]]]  # (kind, actor, detail, data): "created" first
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return str(self.ticket["severity"])

    @property
    def language(self) -> str:
        """The reporter's language if the parse worker computed it, else "" (the acknowledgement detects it)."""
        return self.parsed.language


@dataclass(frozen=True)
class BatchForm:
    """How an ``on_opened`` hook does its work for many new tickets at once (``intake.batch_store``).

    ``accepts`` is asked before anything is written (it may read the batch's session): a ticket it
    refuses goes the per-message way, where the hook itself runs.  ``rows`` gets the tickets with
    their ids and returns the rows to insert, as (table, values) pairs; the batch path inserts them table by table.
    """

    accepts: Callable[[Session, OpenedTicket], bool]
    rows: Callable[[Session, Sequence[OpenedTicket], datetime], Iterable[tuple[Table, dict[str, Any]]]]


class TicketOpener:
    def __init__(self, config: Config, classifier: Classifier, sla: SlaPolicy,
                 on_opened: tuple[NewTicketHook, ...] = (),
                 batch_forms: dict[NewTicketHook, BatchForm] | None = None,
                 language_of: Callable[[str, str], str] | None = None) -> None:
        self.config = config
        self.classifier = classifier
        self.sla = sla
        # Wired in app.py: the acknowledgement to the reporter, then the immediate P1 page.
        self.on_opened = on_opened
        # The same hooks' batch forms; the batched write path runs only when every hook has one,
        # so a hook added without its batch form slows intake down but is never skipped.
        self.batch_forms = batch_forms or {}
        # (subject, body) -> the reporter's language, wired in app.py (the acknowledgement's): pure work on
        # the mail, so the parse worker does it beside the verdict (``intake.pipeline.parse_mails``).
        self.language_of = language_of
        # (severity, now) -> (response due, resolution due): a batch shares one ``now``, and the
        # business-calendar walk was a tenth of a batched ticket's cost.  Keyed by ``now``: never stale.
        self._due: dict[tuple[str, datetime], tuple[datetime, datetime | None]] = {}

    def batch_hooks(self) -> list[BatchForm] | None:
        """The batch form of every ``on_opened`` hook, in order; None when one of them has none."""
        forms = [self.batch_forms.get(hook) for hook in self.on_opened]
        return None if any(form is None for form in forms) else [f for f in forms if f is not None]

    def verdict(self, parsed: ParsedMessage, now: datetime) -> Verdict:
        """The parse worker's verdict when it computed one (``intake.pipeline.parse_mails``: the same rules,
        at the time the batch arrived), else the mail classified now.

        Why also on the per-message path: a P1 that pages at once, a report of a known incident or a mail
        past the flood limit is stored one by one, and was classified a second time here.  A mail whose reply
        tokens that path redacts has none (``IngestPipeline._forget_tokens``): its evidence would quote them.
        """
        if parsed.verdict is not None:
            return parsed.verdict
        return self.classifier.classify(MailFacts.from_parsed(parsed, now, self.classifier.header_names))

    def plan(self, parsed: ParsedMessage, now: datetime, verdict: Verdict | None = None,
             linked: Ticket | None = None) -> OpenedTicket:
        """Every value of the new ticket but its number: pure (no database)."""
        verdict = verdict or self.verdict(parsed, now)
        due = self._due.get((verdict.severity, now))
        if due is None:
            if len(self._due) > 64:
                self._due.clear()
            due = self._due[verdict.severity, now] = (self.sla.response_due(verdict.severity, now),
                                                      self.sla.resolution_due(verdict.severity, now))
        classification = verdict.to_json()
        ticket = {
            "subject": parsed.subject, "reporter": parsed.from_addr, "reporter_name": parsed.from_name,
            "severity": verdict.severity, "role": verdict.role, "status": "new", "created_at": now,
            "updated_at": now, "response_due": due[0], "resolution_due": due[1],
            "classification": classification, "triage": verdict.triage.to_json(), "uncertain": verdict.uncertain,
            "original_severity": verdict.severity,
            "original_role": verdict.role, "tags": list(verdict.tags), "reopened_count": 0,
            "linked_ticket_id": linked.id if linked is not None else None,
            # What incident grouping compares, computed once here rather than for every later report.
            **(grouping_facts(parsed.subject, parsed.body, classification) if self.config.incidents.enabled
               else {"incident_rule": None, "incident_terms": None}),
        }
        participants = [(parsed.from_addr.lower(), "reporter")] if parsed.from_addr else []
        copied = choose_cc(self.config, parsed.from_addr, parsed.cc + parsed.to)
        participants += [(address, "cc") for address in copied.kept]
        names = ", ".join(hit.name for hit in verdict.rules) or "no rule"
        events = [("created", parsed.from_addr, f"{verdict.severity} / {verdict.role} ({names})",
                   {"rules": verdict.to_json(), "fallback": verdict.fallback})]
        if copied.outside or copied.over_cap:
            events.append(("participants_limited", "system",
                           f"{len(copied.outside) + len(copied.over_cap)} copied address(es) not added: "
                           f"{len(copied.outside)} outside the reporter's and the team's domains, "
                           f"{len(copied.over_cap)} over [replies] cc_limit {self.config.replies.cc_limit}",
                           copied.event_data(self.config.replies.cc_limit)))
        return OpenedTicket(parsed, verdict, ticket, participants, events)

    def open(self, session: Session, parsed: ParsedMessage, message: Message, now: datetime,
             linked: Ticket | None = None, verdict: Verdict | None = None, flood: str | None = None) -> Ticket:
        """Store the new ticket and run the ``on_opened`` hooks; *flood*: why a P1 past the sender's flood
        limit opens a ticket after all (recorded before the hooks, which then send no acknowledgement)."""
        opened = self.plan(parsed, now, verdict, linked)
        number, key = allocate_key(session, self.config.support.ticket_prefix)
        ticket = Ticket(number=number, key=key, **opened.ticket)
        session.add(ticket)
        message.ticket = ticket
        session.add(message)
        # Participants before the flush: the ticket is still pending, so its (empty) participant list
        # needs no lazy load, and they are inserted with the ticket.
        for address, kind in opened.participants:
            add_participant(session, ticket, address, kind)
        # No flush here: the event and the outbox rows hold the objects, so one flush stores them all.
        for kind, actor, detail, data in opened.events:
            record_event(session, ticket, kind, now, actor=actor, detail=detail, data=data, message=message)
        if linked is not None:
            record_event(session, ticket, "linked", now, detail=f"linked to {linked.key}",
                         data={"ticket": linked.key}, message=message)
        if flood is not None:
            record_event(session, ticket, FLOOD_OPENED, now, actor=parsed.from_addr, message=message,
                         detail=f"a P1 past the flood limit opens its own ticket (no acknowledgement): {flood}")
        for hook in self.on_opened:
            hook(session, ticket, message, now)
        return ticket
