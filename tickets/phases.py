"""The hypercare phases and the status-email cadence, as pure functions of two dates.

Why pure and date-based: the scheduler, the digests and the tests living through four
weeks all need the same answer to "which phase is it, and is a status email due today?",
without a clock or a database.  Day 0 is go-live (DESIGN.md "Phases and cadence"):

====== ======= =============== ==================================================
days   week    phase           status email to ``stakeholders.daily``
====== ======= =============== ==================================================
0-6    1       intensive       every day
7-13   2       stabilisation   every other day: days 7, 9, 11, 13
14-27  3-4     transition      weekly: days 14 and 21
28-    5-      normal          none (the weekly summary goes on)
====== ======= =============== ==================================================

Days before go-live have week 0, key ``intensive`` (the phase being prepared) and
cadence ``none``: nothing is sent before go-live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

HYPERCARE_DAYS = 28
EXIT_REPORT_DAY = HYPERCARE_DAYS - 1  # last day of week 4
STATUS_DAYS = frozenset((*range(0, 7), 7, 9, 11, 13, 14, 21))


@dataclass(frozen=True)
class Phase:
    """Where hypercare stands on one day, worded for the status email."""

    key: str  # intensive | stabilisation | transition | normal
    week: int  # 1-based week since go-live; 0 before go-live
    title: str  # "Week 2 of hypercare: stabilisation"
    asks: str  # what the phase asks of the team, e.g. "all P1/P2 resolved"
    cadence: str  # daily | every other day | weekly | none


_ASKS = {
    "intensive": "every ticket acknowledged within its SLA; all P1 resolved the same day",
    "stabilisation": "all P1/P2 resolved; backlog falling",
    "transition": "no open P1/P2; backlog falling; hand-over of open tickets to normal support prepared",
    "normal": "regular support; weekly summary only",
}


def day_number(go_live: date, day: date) -> int:
    """Days since go-live: 0 on go-live day, negative before it."""
    return (day - go_live).days


def phase_on(go_live: date, day: date) -> Phase:
    n = day_number(go_live, day)
    if n < 0:
        return Phase(
            "intensive", 0, f"Before go-live: hypercare starts {go_live.isoformat()}",
            "readiness: support mailbox, rules and on-call rota checked", "none",
        )
    week = n // 7 + 1
    if n < 7:
        key, cadence = "intensive", "daily"
    elif n < 14:
        key, cadence = "stabilisation", "every other day"
    elif n < HYPERCARE_DAYS:
        key, cadence = "transition", "weekly"
    else:
        return Phase("normal", week, f"Week {week} after go-live: normal support", _ASKS["normal"], "none")
    asks = _ASKS[key]
    if week == 4:
        asks = "exit criteria met: no open P1/P2, SLA compliance on target, hand-over list agreed"
    return Phase(key, week, f"Week {week} of hypercare: {key}", asks, cadence)


def status_due_on(go_live: date, day: date) -> bool:
    """True on the days a status email goes to ``stakeholders.daily``."""
    return day_number(go_live, day) in STATUS_DAYS


def status_days(go_live: date) -> list[date]:
    """Every day a status email is due, in order (for dashboards and tests)."""
    return [go_live + timedelta(days=n) for n in sorted(STATUS_DAYS)]


def weekly_summary_due_on(go_live: date, day: date, weekly_summary_day: int) -> bool:
    """True on *weekly_summary_day* (Monday = 0) once a full week of data exists, for as long as the desk runs.

    A weekly summary covers the seven whole days before its send day, so the first one goes
    out on day 7 at the earliest: never on go-live morning with nothing to summarise.
    """
    return day_number(go_live, day) >= 7 and day.weekday() == weekly_summary_day


def weeks_label(go_live: date, first: date, last: date) -> str:
    """The hypercare week(s) a span of days belongs to, from ``phase_on``: "Week 1", "Weeks 1-2"."""
    start, end = phase_on(go_live, first).week, phase_on(go_live, last).week
    return f"Week {start}" if start == end else f"Weeks {start}-{end}"


def exit_report_day(go_live: date, is_business_day: Callable[[date], bool] | None = None,
                    override: date | None = None) -> date:
    """When the exit report goes out: *override* (``[hypercare] exit_date``), else the last business
    day of week 4 (days 21-27; day 27 when the calendar has no business day in that week).

    Why a business day: the steering committee reads the report and decides on it; one that
    lands on a Sunday is read on Monday, after the hypercare period has ended.
    """
    if override is not None:
        return override
    last = go_live + timedelta(days=EXIT_REPORT_DAY)
    if is_business_day is None:
        return last
    week4 = [last - timedelta(days=back) for back in range(7)]
    return next((day for day in week4 if is_business_day(day)), last)
