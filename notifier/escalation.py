"""The escalation ladder: the sweep, and the immediate escalation of a new P1.

Why this shape (DESIGN "SLA clock and escalation"): the promise in the acknowledgement
must be kept by the system.  Each open, unanswered, running ticket is escalated once
per ``[sla] escalate_at`` level of its response clock; "once" is a row in
``escalations`` (unique ticket, cycle, level) written in the same SAVEPOINT as the
outbox row (idempotency key ``escalation:HC-3:<cycle>:<level>``), so a restart, a
crash or a second instance sweeping the same database never sends it twice.  A
severity change starts a new cycle (its clock escalates afresh).

Who is told, by level: the lowest level below 100 % -> the members holding the
ticket's role (and its assignee); further levels below 100 % -> they and the on-call
members; 100 % and beyond (breach) -> they, on-call and the project managers.  A new
P1 (``p1-new``) goes at once to role, on-call and project managers.  When the sweep
finds several levels reached at once (service was down, severity raised late), only
the highest is sent and the lower ones are recorded as skipped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Config, TeamMember
from notifier.page_storm import PageStorm
from notifier.team_notice import Headline, TeamNotices, team_members_for
from tickets.clock import Clock
from tickets.incidents import is_follow_up
from tickets.lifecycle import record_event
from tickets.models import OPEN_STATUSES, Escalation, Event, Message, Ticket
from tickets.response_clock import PAUSE_KINDS, SEVERITY_CHANGED, cycle_of, fraction, pauses_from
from tickets.sla import SlaPolicy
from tickets.store import Store, database_unreachable, savepoint

log = logging.getLogger("hypercare.escalation")

P1_NEW = "p1-new"
ROLE, ON_CALL, BREACH = "role", "on_call", "breach"
_CHUNK = 500


def level_key(level: float) -> str:
    """How a fraction is stored and keyed: 0.5 -> "0.5", 1.0 -> "1.0"."""
    return str(float(level))


def tier_for(level: float, levels: Sequence[float]) -> str:
    below = sorted(x for x in levels if x < 1.0)
    if level >= 1.0:
        return BREACH
    return ROLE if below and level == below[0] else ON_CALL


@dataclass(frozen=True)
class Escalated:
    key: str
    level: str
    cycle: int
    recipients: tuple[str, ...]
    skipped: tuple[str, ...] = ()

    def line(self) -> str:
        who = ", ".join(self.recipients) or "nobody (no team member for this ticket in [[team]])"
        extra = f" (skipped {', '.join(self.skipped)})" if self.skipped else ""
        return f"{self.key} escalated level={self.level} cycle={self.cycle} to {who}{extra}"


@dataclass
class SweepReport:
    checked: int = 0
    escalated: list[Escalated] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"checked {self.checked}, escalated {len(self.escalated)}, errors {len(self.errors)}"

    def run(self, ticket: Ticket, step: Callable[[], Escalated | None]) -> None:
        """One ticket's step of a sweep: a failure is reported and the sweep goes on with the next one."""
        try:
            escalated = step()
        except Exception as exc:
            if database_unreachable(exc):
                raise  # the sweep's transaction is gone (full disk, lost connection): the whole sweep tries later
            log.exception("%s escalation failed", ticket.key)
            self.errors.append(f"{ticket.key}: {type(exc).__name__}: {exc}")
            return
        if escalated is not None:
            self.escalated.append(escalated)

    def log(self) -> None:
        for item in self.escalated:
            log.info(item.line())


class Escalator:
    def __init__(self, config: Config, store: Store, clock: Clock, sla: SlaPolicy, notices: TeamNotices,
                 storm: PageStorm | None = None) -> None:
        self.storm = storm  # notifier.page_storm: immediate P1 pages past the limit are coalesced
        self.config = config
        self.store = store
        self.clock = clock
        self.sla = sla
        self.notices = notices
        self.levels = tuple(sorted(sla.escalate_at))

    # --- hooks ---------------------------------------------------------------------------------

    def on_new_ticket(self, session: Session, ticket: Ticket, request: Message, now: datetime) -> None:
        """``TicketOpener.on_opened`` hook: a new P1 escalates at once, in the ticket's transaction.

        A later report of a known incident pages nobody: the team was paged once per incident.
        """
        if self.pages_at_once(ticket.severity) and not is_follow_up(ticket):
            self.escalate_p1(session, ticket, now, cycle=0)

    @staticmethod
    def pages_at_once(severity: str) -> bool:
        """Whether a new ticket of *severity* pages the team at once (the batched write path leaves
        such tickets to ``on_new_ticket``)."""
        return severity == "P1"

    def escalate_p1(self, session: Session, ticket: Ticket, now: datetime, *, cycle: int) -> Escalated | None:
        to, held = self.recipients(ticket, BREACH), []
        if self.storm is not None:  # past the page-storm limit a person's page waits for one listing page
            to, held = self.storm.split(session, to, now)
        escalated = self.record(session, ticket, now, cycle=cycle, level=P1_NEW, tier=BREACH, to=to,
                                headline=self._headline(ticket, P1_NEW, now))
        if held and escalated is not None and self.storm is not None:
            self.storm.hold(session, ticket, held, now, cycle)
        return escalated

    # --- the sweep -----------------------------------------------------------------------------

    def sweep(self) -> SweepReport:
        """Escalate every running ticket that reached a level it was not escalated at yet."""
        report = SweepReport()
        now = self.clock.now()
        with self.store.session() as session:
            tickets = list(session.scalars(
                select(Ticket).where(
                    Ticket.status.in_(OPEN_STATUSES), Ticket.status != "waiting_on_customer",
                    Ticket.first_response_at.is_(None), Ticket.paused_at.is_(None),
                    Ticket.response_due.is_not(None),
                ).order_by(Ticket.id)
            ))
            report.checked = len(tickets)
            events, done = self._history(session, [t.id for t in tickets])
            for ticket in tickets:
                report.run(ticket, lambda t=ticket: self._sweep_one(session, t, events[t.id], done, now))
        report.log()
        return report

    def _history(self, session: Session, ids: list[int]) -> tuple[dict[int, list[Event]], set[tuple[int, int, str]]]:
        events: dict[int, list[Event]] = defaultdict(list)
        done: set[tuple[int, int, str]] = set()
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            for event in session.scalars(select(Event).where(
                    Event.ticket_id.in_(chunk), Event.kind.in_((*PAUSE_KINDS, SEVERITY_CHANGED)))):
                events[event.ticket_id].append(event)
            for row in session.execute(select(Escalation.ticket_id, Escalation.cycle, Escalation.level)
                                       .where(Escalation.ticket_id.in_(chunk))):
                done.add((row[0], row[1], row[2]))
        return events, done

    def _sweep_one(self, session: Session, ticket: Ticket, events: list[Event],
                   done: set[tuple[int, int, str]], now: datetime) -> Escalated | None:
        if self.sla.is_scheduled(ticket.severity) or is_follow_up(ticket):
            # P4 "next sprint": scheduled, told at triage, never chased or "breached"; a later report
            # of an incident: the incident's first report carries the ladder.
            return None
        reached_fraction = fraction(self.sla, ticket, pauses_from(events), now)
        if reached_fraction is None:
            return None
        cycle = cycle_of(events)
        reached = [lvl for lvl in self.levels
                   if reached_fraction >= lvl and (ticket.id, cycle, level_key(lvl)) not in done]
        if not reached:
            return None
        top = reached[-1]
        return self._escalate(session, ticket, now, cycle=cycle, level=level_key(top),
                              tier=tier_for(top, self.levels), skipped=[level_key(x) for x in reached[:-1]])

    # --- one escalation ------------------------------------------------------------------------

    def recipients(self, ticket: Ticket, tier: str) -> list[str]:
        return team_members_for(self.config, ticket, on_call=tier in (ON_CALL, BREACH), managers=tier == BREACH)

    def _escalate(self, session: Session, ticket: Ticket, now: datetime, *, cycle: int, level: str, tier: str,
                  skipped: Sequence[str] = ()) -> Escalated | None:
        return self.record(session, ticket, now, cycle=cycle, level=level, tier=tier, skipped=skipped,
                           to=self.recipients(ticket, tier), headline=self._headline(ticket, level, now))

    def record(self, session: Session, ticket: Ticket, now: datetime, *, cycle: int, level: str, tier: str,
               to: list[str], headline: Headline, skipped: Sequence[str] = ()) -> Escalated | None:
        """Record the level (and skipped ones) and queue the mail, atomically; None if already done.

        Public for the resolution ladder (``notifier.resolution_ladder``), which keys its own levels.
        """
        # begin_nested() flushes what is pending (a new ticket from the pipeline): flush it out here, so a
        # uniqueness error of *that* goes to its owner and is not taken for "level already recorded".
        session.flush()
        try:
            # One SAVEPOINT for the rows, the mail and the event: a failure anywhere leaves the level
            # unrecorded (so the next sweep tries again), never recorded without its mail.
            with savepoint(session):
                for lower in skipped:
                    session.add(Escalation(ticket_id=ticket.id, cycle=cycle, level=lower, at=now, recipients=[]))
                session.add(Escalation(ticket_id=ticket.id, cycle=cycle, level=level, at=now, recipients=to))
                session.flush()
                if to:
                    self.notices.enqueue(session, ticket, kind="escalation", headline=headline, to=to,
                                         key=f"escalation:{ticket.key}:{cycle}:{level}", now=now)
                    record_event(session, ticket, "escalated", now, detail=f"{headline.short}: {', '.join(to)}",
                                 data={"level": level, "cycle": cycle, "tier": tier, "recipients": to,
                                       "skipped": list(skipped)})
                else:
                    # No [[team]] (embedded defaults, demo): the level is recorded as reached, nobody is mailed.
                    log.warning("%s %s: nobody in [[team]] to notify", ticket.key, headline.short)
        except IntegrityError as exc:
            if self._recorded(session, ticket, cycle=cycle, level=level):
                # Another instance (or an earlier sweep) recorded this level first.
                log.info("%s escalation level=%s cycle=%s already recorded", ticket.key, level, cycle)
            else:
                # Any other uniqueness error left nothing recorded and nobody told: say so loudly.  The
                # sweep tries the fraction levels again; a new-P1 page is not repeated, its ladder's
                # first level (50 %) is the next page.
                log.error("%s escalation level=%s cycle=%s NOT queued: %s", ticket.key, level, cycle,
                          str(exc.orig).splitlines()[0] if exc.orig is not None else exc)
            return None
        return Escalated(ticket.key, level, cycle, tuple(to), tuple(skipped))

    @staticmethod
    def _recorded(session: Session, ticket: Ticket, *, cycle: int, level: str) -> bool:
        """Whether *level* of *cycle* is in ``escalations`` (an uniqueness error means "done" only then)."""
        return session.scalar(select(Escalation.id).where(
            Escalation.ticket_id == ticket.id, Escalation.cycle == cycle, Escalation.level == level)) is not None

    def _headline(self, ticket: Ticket, level: str, now: datetime) -> Headline:
        target = self.sla.target_label(ticket.severity)
        if level == P1_NEW:
            return Headline("New P1", f"New P1 ticket {ticket.key}: first response is due within {target}.")
        percent = f"{float(level) * 100:g}%"
        if float(level) >= 1.0:
            return Headline(f"SLA breached ({percent})",
                            f"{ticket.key} has had no first response within {target}: the SLA is breached.")
        return Headline(f"Escalation {percent}",
                        f"{percent} of the first-response time ({target}) of {ticket.key} has passed "
                        "without an answer to the reporter.")

    def notify_assignment(self, session: Session, ticket: Ticket, to: list[str], *, actor: TeamMember,
                          what: str, key: str, now: datetime) -> None:
        """The escalation-like notice that ``#assign`` sends to the new role's members or the new assignee."""
        headline = Headline("Assigned to you", f"{actor.name} assigned {ticket.key} to {what}.")
        self.notices.enqueue(session, ticket, kind="assignment", headline=headline, to=to, key=key, now=now,
                             actor=actor)
