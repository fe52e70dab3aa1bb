"""The triage notice: every new ticket reaches the members holding its role when it is opened.

Why at creation (issue 14): before, a P2-P4 ticket was invisible to the team until 50 % of
its first-response time had passed, so in 26 of 38 tickets the owner could first act on an
escalation.  The notice is the team mail of ``notifier.team_notice`` (the ticket, the
classifier's reasons, the thread, the reply commands, the signed Reply-To), sent once
(``triage:HC-3``) in the ticket's transaction as a ``TicketOpener.on_opened`` hook.

Who gets what: a P1 keeps its immediate page to role + on-call + project managers
(``Escalator.on_new_ticket``), so it gets no second mail; a later report of a known
incident gets none either (its incident was already paged: ``tickets.incidents``).  With
``[triage] low_severity = "digest"`` a P3/P4 gets no notice here: ``notifier.triage_digest`` lists it
in the next digest of its role's members (``batches``), with its own signed reply address.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config
from notifier.labels import role_label
from notifier.team_notice import Headline, TeamNotices, team_members_for
from tickets.clock import Clock
from tickets.incidents import is_follow_up
from tickets.lifecycle import record_event
from tickets.models import OPEN_STATUSES, Event, Message, Ticket
from tickets.sla import SlaPolicy
from tickets.store import Store

TRIAGE = "triage"
LOOK_BACK = timedelta(days=1)  # how far the beat looks for new tickets without a notice


class TriageNotices:
    def __init__(self, config: Config, notices: TeamNotices, sla: SlaPolicy, store: Store | None = None,
                 clock: Clock | None = None, batches: Callable[[str], bool] = lambda severity: False) -> None:
        self.config = config
        # Whether a severity's notice waits for the triage digest (notifier.triage_digest, [triage] low_severity).
        self.batches = batches
        self.notices = notices
        self.sla = sla
        self.store = store
        self.clock = clock

    def on_new_ticket(self, session: Session, ticket: Ticket, request: Message, now: datetime) -> None:
        """``TicketOpener.on_opened`` hook (after the acknowledgement and the P1 page)."""
        self.notify(session, ticket, now)

    def sweep(self) -> int:
        """Every beat: the notices of new tickets stored by the batched write path (which runs no hooks).

        Open tickets of the last day, not P1, without a ``triaged`` event; the outbox key makes a notice
        that was queued already a no-op.
        """
        assert self.store is not None and self.clock is not None
        now = self.clock.now()
        triaged = select(Event.id).where(Event.ticket_id == Ticket.id, Event.kind == "triaged").exists()
        sent = 0
        immediate = [s for s in ("P2", "P3", "P4") if not self.batches(s)]
        with self.store.session() as session:
            for ticket in session.scalars(select(Ticket).where(
                    Ticket.created_at >= now - LOOK_BACK, Ticket.status.in_(OPEN_STATUSES),
                    Ticket.severity.in_(immediate), ~triaged).order_by(Ticket.id).limit(500)):
                sent += self.notify(session, ticket, now)
        return sent

    def notify(self, session: Session, ticket: Ticket, now: datetime) -> int:
        if ticket.severity == "P1" or (ticket.incident is not None and is_follow_up(ticket)):
            # Paged already (the P1 page, or the incident's page).  An incident's first report was told
            # when it arrived alone; stored by the batched path, it may have been joined before this beat.
            return 0
        if self.batches(ticket.severity):
            return 0  # listed in the next triage digest (no "triaged" event until then)
        to = team_members_for(self.config, ticket)
        if not to:
            return 0
        session.flush()  # the outbox rows name the ticket's id (their own enqueue flushes anyway)
        self.notices.enqueue(session, ticket, kind=TRIAGE, headline=self.headline(ticket), to=to,
                             key=f"{TRIAGE}:{ticket.key}", now=now)
        record_event(session, ticket, "triaged", now, detail=f"triage notice to {', '.join(to)}",
                     data={"recipients": to})
        return 1

    def headline(self, ticket: Ticket) -> Headline:
        target = self.sla.target_label(ticket.severity)
        when = ("scheduled for the next sprint" if self.sla.is_scheduled(ticket.severity)
                else f"first response within {target}")
        return Headline(f"New {ticket.severity}",
                        f"New {ticket.severity} ticket {ticket.key} for {role_label(ticket.role)}: {when}. "
                        "Reply with #ack to take it.")
