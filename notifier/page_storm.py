"""Page storms coalesce: past ``[notifier] page_storm_pages`` immediate P1 pages to one person within
``page_storm_minutes``, further pages are held and sent as one page listing the tickets.

Why: rotating From addresses produced 20 immediate P1 pages to the on-call person in one second; a
pager that rings twenty times is switched off.  Who is held is an ``escalations`` row (level
``p1-held``, the held people as recipients) written with the ticket's own p1-new row; every beat
``coalesce`` sends each held person one page naming all their held tickets and records level
``p1-storm`` on each, so a restart or a second instance never sends it twice.  The response ladder
(50 %, 80 %, breach) still escalates every one of those tickets on its own.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config
from notifier.team_notice import Headline, TeamNotices
from tickets.clock import Clock
from tickets.lifecycle import record_event
from tickets.models import Escalation, Ticket
from tickets.store import Store

HELD, STORM = "p1-held", "p1-storm"
PAGE_LEVELS = ("p1-new", STORM)  # what counts as a page that rang


class PageStorm:
    def __init__(self, config: Config, store: Store, clock: Clock, notices: TeamNotices) -> None:
        self.limit = config.notifier.page_storm_pages
        self.window = timedelta(minutes=config.notifier.page_storm_minutes)
        self.store = store
        self.clock = clock
        self.notices = notices

    def split(self, session: Session, to: list[str], now: datetime) -> tuple[list[str], list[str]]:
        """(page now, hold for the storm page): who already had the limit's pages within the window."""
        recent = session.scalars(select(Escalation.recipients).where(
            Escalation.level.in_(PAGE_LEVELS), Escalation.at > now - self.window))
        rang = Counter(address for recipients in recent for address in recipients)
        return [a for a in to if rang[a] < self.limit], [a for a in to if rang[a] >= self.limit]

    def hold(self, session: Session, ticket: Ticket, held: list[str], now: datetime, cycle: int) -> None:
        session.add(Escalation(ticket_id=ticket.id, cycle=cycle, level=HELD, at=now, recipients=held))
        record_event(session, ticket, "page_held", now, detail=f"page storm: held for {', '.join(held)}",
                     data={"held": held})

    def coalesce(self) -> str:
        """Send every held person one page listing their held tickets (a beat's job)."""
        now = self.clock.now()
        with self.store.session() as session:
            done = set(session.execute(select(Escalation.ticket_id, Escalation.cycle)
                                       .where(Escalation.level == STORM)).all())
            held = [row for row in session.scalars(select(Escalation).where(Escalation.level == HELD)
                                                   .order_by(Escalation.id))
                    if (row.ticket_id, row.cycle) not in done]
            if not held:
                return "no held pages"
            tickets = {t.id: t for t in session.scalars(select(Ticket).where(
                Ticket.id.in_({row.ticket_id for row in held})))}
            per_person: dict[str, list[Ticket]] = defaultdict(list)
            for row in held:
                for address in row.recipients:
                    per_person[address].append(tickets[row.ticket_id])
            for address, waiting in per_person.items():
                self._page(session, address, waiting, now)
            for row in held:
                session.add(Escalation(ticket_id=row.ticket_id, cycle=row.cycle, level=STORM, at=now,
                                       recipients=list(row.recipients)))
            return f"{len(per_person)} storm page(s) for {len(held)} held ticket(s)"

    def _page(self, session: Session, address: str, waiting: list[Ticket], now: datetime) -> None:
        newest = waiting[-1]
        listing = "; ".join(f"{t.key} {t.subject[:80]}" for t in waiting[:50])
        more = f"; and {len(waiting) - 50} more" if len(waiting) > 50 else ""
        headline = Headline(
            f"P1 storm: {len(waiting)} new P1",
            f"More than {self.limit} new P1 tickets within {int(self.window.total_seconds() // 60)} minutes: "
            f"these were not paged one by one: {listing}{more}. Each is still escalated on its own schedule.")
        self.notices.enqueue(session, newest, kind="escalation", headline=headline, to=[address],
                             key=f"p1-storm:{address}:{newest.key}", now=now)
