"""The resolution ladder: an acknowledged ticket that stays open is chased until it is resolved.

Why a ladder of its own (issue 14): the response ladder ends with the first response
(``#ack``, an answer, ``#wait``), but the phase goals are about resolution ("all P1
resolved the same day", "all P1/P2 resolved"); an acknowledged P1 open for 21 hours
must not be silent.  Targets come from ``[sla.resolution]`` (defaults: P1 the same
business day, P2 2 business days), levels from ``[sla] resolution_escalate_at``
(default 80 % and 100 %).  Below 100 % the owner is told (the assignee, else the
members holding the role); at 100 % the owner and the project managers.

It shares the response ladder's bookkeeping (``Escalator.record``: an ``escalations`` row
per ticket, cycle and level, written with its outbox row in one SAVEPOINT), with the
levels keyed ``res-0.8``/``res-1.0`` so the two ladders never collide.  A ticket waiting
on the reporter is not chased (its resolution due time moves on by the pause when the
reporter replies).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config
from notifier.escalation import BREACH, Escalated, Escalator, SweepReport, level_key
from notifier.team_notice import Headline, team_members_for
from tickets.clock import Clock
from tickets.incidents import is_follow_up
from tickets.models import OPEN_STATUSES, Escalation, Event, Ticket
from tickets.response_clock import SEVERITY_CHANGED, cycle_of, format_duration
from tickets.sla import SlaPolicy
from tickets.store import Store

PREFIX = "res-"
OWNER = "owner"


def resolution_level_key(level: float) -> str:
    """``res-0.8``, ``res-1.0``: the ``escalations.level`` of a resolution level."""
    return PREFIX + level_key(level)


class ResolutionLadder:
    def __init__(self, config: Config, store: Store, clock: Clock, sla: SlaPolicy, escalator: Escalator) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.sla = sla
        self.escalator = escalator
        self.levels = tuple(sorted(config.sla.resolution_escalate_at))

    def sweep(self) -> SweepReport:
        """Escalate every open, running ticket that reached a resolution level it was not escalated at."""
        report = SweepReport()
        now = self.clock.now()
        with self.store.session() as session:
            tickets = list(session.scalars(
                select(Ticket).where(Ticket.status.in_(OPEN_STATUSES), Ticket.status != "waiting_on_customer",
                                     Ticket.resolution_due.is_not(None)).order_by(Ticket.id)))
            report.checked = len(tickets)
            ids = [t.id for t in tickets]
            done = {(row[0], row[1], row[2]) for row in session.execute(
                select(Escalation.ticket_id, Escalation.cycle, Escalation.level)
                .where(Escalation.ticket_id.in_(ids), Escalation.level.startswith(PREFIX)))} if ids else set()
            changes: dict[int, list[Event]] = {}
            for event in session.scalars(select(Event).where(Event.ticket_id.in_(ids),
                                                             Event.kind == SEVERITY_CHANGED)) if ids else ():
                changes.setdefault(event.ticket_id, []).append(event)
            for ticket in tickets:
                report.run(ticket, lambda t=ticket: self._sweep_one(
                    session, t, cycle_of(changes.get(t.id, [])), done, now))
        report.log()
        return report

    def _sweep_one(self, session: Session, ticket: Ticket, cycle: int, done: set[tuple[int, int, str]],
                   now: datetime) -> Escalated | None:
        assert ticket.resolution_due is not None
        if is_follow_up(ticket):
            return None  # resolved with its incident: the first report carries the ladder
        reached_fraction = self.sla.resolution_fraction(ticket.severity, ticket.created_at, ticket.resolution_due,
                                                        now)
        reached = [lvl for lvl in self.levels
                   if reached_fraction >= lvl and (ticket.id, cycle, resolution_level_key(lvl)) not in done]
        if not reached:
            return None
        top = reached[-1]
        tier = BREACH if top >= 1.0 else OWNER
        return self.escalator.record(session, ticket, now, cycle=cycle, level=resolution_level_key(top), tier=tier,
                                     to=self.recipients(ticket, tier), headline=self.headline(ticket, top, now),
                                     skipped=[resolution_level_key(x) for x in reached[:-1]])

    def recipients(self, ticket: Ticket, tier: str) -> list[str]:
        """The owner (assignee, else the role's members); at breach also the project managers."""
        owner = [ticket.assignee.lower()] if ticket.assignee else team_members_for(self.config, ticket)
        if tier != BREACH:
            return owner
        managers = [m.email.lower() for m in self.config.team if "project_manager" in m.roles]
        return list(dict.fromkeys([*owner, *managers]))

    def headline(self, ticket: Ticket, level: float, now: datetime) -> Headline:
        target = self.sla.resolution_target(ticket.severity)
        label = target.label if target is not None else "its resolution target"
        due = ticket.resolution_due
        assert due is not None
        if level >= 1.0:
            late = format_duration(max(0.0, (now - due).total_seconds()))
            return Headline("Resolution overdue",
                            f"{ticket.key} is still {ticket.status.replace('_', ' ')}: it was to be resolved "
                            f"within {label} and is overdue by {late}.")
        percent = f"{level * 100:g}%"
        left = format_duration(max(0.0, (due - now).total_seconds()))
        return Headline(f"Resolution {percent}",
                        f"{percent} of the resolution time ({label}) of {ticket.key} has passed; "
                        f"it is still {ticket.status.replace('_', ' ')}, {left} left.")
