"""The SQL behind the digests: every figure is an aggregate computed by the database.

Why SQL and not Python loops: a daily status over 100,000 tickets must render in well
under a second, so each question is one ``GROUP BY`` or one ``CASE``-sum scan, and
Python only combines a few dozen result rows.  Day buckets are computed as UTC
instants of local midnights (passed in), so the trend is right across DST changes
and the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from tickets.models import OPEN_STATUSES, Event, Ticket

SEVERITIES = ("P1", "P2", "P3", "P4")


@dataclass(frozen=True)
class Tally:
    """Ticket counts split by severity and by role (from one GROUP BY severity, role)."""

    total: int
    by_severity: dict[str, int]
    by_role: dict[str, int]

    @classmethod
    def from_rows(cls, rows: Sequence[tuple[str, str, int]]) -> Tally:
        by_severity: dict[str, int] = dict.fromkeys(SEVERITIES, 0)
        by_role: dict[str, int] = {}
        for severity, role, n in rows:
            by_severity[severity] = by_severity.get(severity, 0) + int(n)
            by_role[role] = by_role.get(role, 0) + int(n)
        return cls(sum(by_severity.values()), by_severity, dict(sorted(by_role.items())))


@dataclass(frozen=True)
class SlaTally:
    """First-response SLA for one severity: met, breached (answered late), overdue (not answered yet)."""

    severity: str
    met: int
    breached: int
    overdue: int

    @property
    def measured(self) -> int:
        return self.met + self.breached + self.overdue

    @property
    def compliance(self) -> float | None:
        return self.met / self.measured if self.measured else None


@dataclass(frozen=True)
class OpenRow:
    key: str
    subject: str
    severity: str
    role: str
    status: str
    created_at: datetime
    response_due: datetime | None
    first_response_at: datetime | None
    resolution_due: datetime | None


_IS_OPEN = Ticket.status.in_(OPEN_STATUSES)


def _tally(session: Session, *where: object) -> Tally:
    rows = session.execute(
        select(Ticket.severity, Ticket.role, func.count()).where(*where).group_by(Ticket.severity, Ticket.role)
    ).all()
    return Tally.from_rows(rows)


def open_tally(session: Session) -> Tally:
    return _tally(session, _IS_OPEN)


def window_tallies(session: Session, start: datetime, end: datetime) -> tuple[Tally, Tally, Tally]:
    """(open now, created in [start, end), resolved in [start, end)): one scan, three CASE-sums per group."""
    def counted(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(Ticket.severity, Ticket.role, counted(_IS_OPEN),
               counted(and_(Ticket.created_at >= start, Ticket.created_at < end)),
               counted(and_(Ticket.resolved_at >= start, Ticket.resolved_at < end)))
        .group_by(Ticket.severity, Ticket.role)
    ).all()
    return tuple(  # type: ignore[return-value]
        Tally.from_rows([(s, r, n[i]) for s, r, *n in rows if n[i]]) for i in range(3)
    )


def _day_bucket(column: Any, bounds: Sequence[datetime]) -> Any:
    """The index of the bucket ``bounds[i] <= column < bounds[i+1]`` as a CASE chain (SQL, any backend)."""
    return case(*[(column < bound, i) for i, bound in enumerate(bounds[1:])]).label("bucket")


def daily_trend(session: Session, bounds: Sequence[datetime]) -> list[tuple[int, int]]:
    """(opened, resolved) per bucket ``bounds[i] <= t < bounds[i+1]``.

    The bucket is a CASE chain over the bounds (local midnights as UTC instants), grouped in SQL;
    each query touches one indexed column only, so the index covers it.
    """
    result = [[0, 0] for _ in range(max(0, len(bounds) - 1))]
    if not result:
        return []
    for j, column in enumerate((Ticket.created_at, Ticket.resolved_at)):
        bucket = _day_bucket(column, bounds)
        for index, n in session.execute(
            select(bucket, func.count()).where(column >= bounds[0], column < bounds[-1]).group_by(bucket)
        ).all():
            result[int(index)][j] = int(n)
    return [(o, r) for o, r in result]


def daily_responses(session: Session, bounds: Sequence[datetime]) -> list[tuple[int, int]]:
    """(met, answered) per bucket of first responses given ``bounds[i] <= t < bounds[i+1]`` (the SLA trend)."""
    result = [[0, 0] for _ in range(max(0, len(bounds) - 1))]
    if not result:
        return []
    column = Ticket.first_response_at
    bucket = _day_bucket(column, bounds)
    met = func.coalesce(func.sum(case((Ticket.response_met.is_(True), 1), else_=0)), 0)
    for index, n_met, n in session.execute(
        select(bucket, met, func.count()).where(column >= bounds[0], column < bounds[-1],
                                                Ticket.response_met.is_not(None)).group_by(bucket)
    ).all():
        result[int(index)] = [int(n_met), int(n)]
    return [(m, n) for m, n in result]


def overdue_by_bucket(session: Session, bounds: Sequence[datetime], now: datetime) -> list[int]:
    """Per bucket of ``response_due``: open tickets still unanswered at *now* (they count as late)."""
    result = [0] * max(0, len(bounds) - 1)
    if not result:
        return []
    bucket = _day_bucket(Ticket.response_due, bounds)
    for index, n in session.execute(
        select(bucket, func.count()).where(
            _IS_OPEN, Ticket.first_response_at.is_(None), Ticket.paused_at.is_(None),
            Ticket.response_due >= bounds[0], Ticket.response_due < min(bounds[-1], now)).group_by(bucket)
    ).all():
        result[int(index)] = int(n)
    return result


def sla_tallies(session: Session, start: datetime, end: datetime, now: datetime) -> dict[str, SlaTally]:
    """Per severity: responses given in [start, end) met or breached, plus tickets due in the window
    and still unanswered at *now* (overdue: they count against compliance before anyone replies)."""
    answered = session.execute(
        select(Ticket.severity,
               func.coalesce(func.sum(case((Ticket.response_met.is_(True), 1), else_=0)), 0),
               func.coalesce(func.sum(case((Ticket.response_met.is_(False), 1), else_=0)), 0))
        .where(Ticket.first_response_at >= start, Ticket.first_response_at < end,
               Ticket.response_met.is_not(None))
        .group_by(Ticket.severity)
    ).all()
    overdue = dict(session.execute(
        select(Ticket.severity, func.count())
        .where(_IS_OPEN, Ticket.first_response_at.is_(None), Ticket.paused_at.is_(None),
               Ticket.response_due >= start, Ticket.response_due < min(end, now))
        .group_by(Ticket.severity)
    ).all())
    result = {s: SlaTally(s, 0, 0, int(overdue.get(s, 0))) for s in SEVERITIES}
    for severity, met, breached in answered:
        result[severity] = SlaTally(severity, int(met), int(breached), int(overdue.get(severity, 0)))
    return result


def first_response_stats(session: Session, start: datetime, end: datetime) -> tuple[int, float | None, float | None]:
    """(count, mean seconds, 90th percentile seconds, nearest rank) of first responses given in the window."""
    window = (Ticket.first_response_at >= start, Ticket.first_response_at < end,
              Ticket.response_elapsed_seconds.is_not(None))
    n, mean = session.execute(select(func.count(), func.avg(Ticket.response_elapsed_seconds)).where(*window)).one()
    if not n:
        return 0, None, None
    rank = max(1, math.ceil(0.9 * n))
    p90 = session.scalar(select(Ticket.response_elapsed_seconds).where(*window)
                         .order_by(Ticket.response_elapsed_seconds).offset(rank - 1).limit(1))
    return int(n), float(mean), float(p90) if p90 is not None else None


def reopened(session: Session, start: datetime, end: datetime,
             limit: int = 20) -> tuple[int, list[tuple[str, str, int]]]:
    """Tickets reopened in the window: how many, and the first *limit* (key, subject, times reopened)."""
    where = (Event.kind == "reopened", Event.at >= start, Event.at < end)
    total = session.scalar(select(func.count(func.distinct(Event.ticket_id))).where(*where)) or 0
    rows = session.execute(
        select(Ticket.key, Ticket.subject, Ticket.reopened_count)
        .where(Ticket.id.in_(select(Event.ticket_id).where(*where)))
        .order_by(Ticket.reopened_count.desc(), Ticket.number).limit(limit)
    ).all()
    return int(total), [(k, s, int(c)) for k, s, c in rows]


def open_rows(session: Session, *, severities: Sequence[str] = (), limit: int = 50) -> tuple[int, list[OpenRow]]:
    """Open tickets, oldest first (by severity first when *severities* given): count and the first *limit*."""
    where = [_IS_OPEN]
    if severities:
        where.append(Ticket.severity.in_(severities))
    total = session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0
    order = (Ticket.severity, Ticket.created_at, Ticket.number) if severities else (Ticket.created_at, Ticket.number)
    rows = session.execute(
        select(Ticket.key, Ticket.subject, Ticket.severity, Ticket.role, Ticket.status, Ticket.created_at,
               Ticket.response_due, Ticket.first_response_at, Ticket.resolution_due)
        .where(*where).order_by(*order).limit(limit)
    ).all()
    return int(total), [OpenRow(*r) for r in rows]


def backlog_at(session: Session, *instants: datetime, severities: Sequence[str] = ()) -> list[int]:
    """Tickets open at each instant: created by then and not resolved by then (one scan for all);
    only *severities* when given (P4 feature requests are scheduled for sprints, not backlog)."""
    columns = [
        func.coalesce(func.sum(case((and_(
            Ticket.created_at <= when,
            or_(Ticket.resolved_at.is_(None), Ticket.resolved_at > when),
            or_(Ticket.resolved_at.is_not(None), _IS_OPEN),
        ), 1), else_=0)), 0)
        for when in instants
    ]
    query = select(*columns)
    if severities:
        query = query.where(Ticket.severity.in_(severities))
    return [int(n) for n in session.execute(query).one()]


def backlog_series(session: Session, instants: Sequence[datetime], severities: Sequence[str]) -> list[int]:
    """Tickets of *severities* open at each of the ascending *instants* (the burn-down), in one scan.

    Why not ``backlog_at`` with 28 instants: that is 28 ``CASE`` sums per row.  Here each ticket gets
    the index of the first instant it existed at and the first instant it was resolved by (two
    ``CASE`` chains), the database groups the few hundred pairs, and Python adds them up.
    """
    if not instants:
        return []
    never = len(instants)

    def first_at_or_after(column: Any) -> Any:
        return case(*[(column <= when, i) for i, when in enumerate(instants)], else_=never)

    created = first_at_or_after(Ticket.created_at).label("created")
    resolved = case((Ticket.resolved_at.is_(None), never), else_=first_at_or_after(Ticket.resolved_at)).label("gone")
    rows = session.execute(
        select(created, resolved, func.count())
        .where(Ticket.severity.in_(severities), Ticket.created_at <= instants[-1],
               or_(Ticket.resolved_at.is_not(None), _IS_OPEN))  # closed without a resolution time: never open
        .group_by(created, resolved)
    ).all()
    series = [0] * len(instants)
    for first, gone, n in rows:
        for i in range(int(first), min(int(gone), len(instants))):
            series[i] += int(n)
    return series


def created_count(session: Session, since: datetime, severities: Sequence[str], until: datetime | None = None) -> int:
    where = [Ticket.created_at >= since, Ticket.severity.in_(severities)]
    if until is not None:
        where.append(Ticket.created_at < until)
    return int(session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0)


def overdue_count(session: Session, severities: Sequence[str], now: datetime) -> int:
    """Open tickets of *severities* past their response time with no first response (clock running)."""
    return int(session.scalar(select(func.count()).select_from(Ticket).where(
        _IS_OPEN, Ticket.severity.in_(severities), Ticket.first_response_at.is_(None), Ticket.paused_at.is_(None),
        Ticket.response_due.is_not(None), Ticket.response_due <= now)) or 0)


def subjects(session: Session, start: datetime, end: datetime, limit: int = 20_000) -> list[str]:
    """Subjects of the tickets opened in the window (for the topic words), newest *limit* at most."""
    return list(session.scalars(select(Ticket.subject).where(Ticket.created_at >= start, Ticket.created_at < end)
                                .order_by(Ticket.created_at.desc()).limit(limit)))
