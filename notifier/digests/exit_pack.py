"""The exit pack: what the steering committee needs to decide on the end of hypercare.

Why its own module: the exit report is more than a verdict.  It carries the whole period
(tickets by severity and role over the four weeks, SLA compliance per week, the backlog
burn-down, satisfaction), the hand-over list split into what blocks the exit and what is
merely scheduled (P4 feature requests wait for their sprint), and the decision once a
project manager recorded it.  Every figure is an SQL aggregate; the charts are pre-computed
geometry for Outlook-safe table bars (no images, no scripts, no CDN).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from config import ExitSettings
from notifier.digests import queries as q
from notifier.digests.criteria import SlaFigure, sla_figure
from notifier.digests.lines import TicketLine, local_midnight, ticket_lines
from notifier.labels import role_label, severity_label
from tickets.decisions import latest_decision
from tickets.feedback import FeedbackSummary, feedback_summary
from tickets.phases import HYPERCARE_DAYS
from tickets.sla import SlaPolicy

CHART_PX = 80  # tallest burn-down column, pixels
WEEK_BAR_PX = 200  # a 100 % week in the SLA chart
HANDOVER_LIMIT = 500


@dataclass(frozen=True)
class WeekSla:
    """First-response SLA of one hypercare week, with its bar."""

    week: int
    label: str  # "Week 1 (23 Nov - 29 Nov)"
    figure: SlaFigure
    px: int
    act: bool  # below target on a meaningful sample: the only red bar


@dataclass(frozen=True)
class BurnPoint:
    """Open tickets at the end of one local day: backlog (blocking + normal) and scheduled (P4)."""

    day: date
    label: str  # "23.11"
    backlog: int
    scheduled: int
    backlog_px: int
    scheduled_px: int


@dataclass(frozen=True)
class Period:
    start: datetime  # go-live local midnight (UTC instant)
    end: datetime  # now, or the end of week 4
    tz: ZoneInfo


def exit_pack(session: Session, *, go_live: date, tz: ZoneInfo, sla: SlaPolicy, settings: ExitSettings,
              now: datetime) -> dict[str, Any]:
    period = Period(local_midnight(go_live, tz), now, tz)
    open_now, created, resolved = q.window_tallies(session, period.start, period.end)
    total, rows = q.open_rows(session, limit=HANDOVER_LIMIT)
    lines = ticket_lines(rows, sla, now)
    blocking = [t for t in lines if t.severity in settings.blocking_severities]
    scheduled = [t for t in lines if t.severity not in settings.backlog_severities]
    feedback = feedback_summary(session, period.start, period.end, low_limit=5)
    burn = burn_down(session, go_live, period, settings)
    return {
        "period_start": period.start.astimezone(tz),
        "created": created,
        "resolved": resolved,
        "open": open_now,
        "totals": _totals(created, resolved, open_now),
        "role_totals": [(role_label(r), n, resolved.by_role.get(r, 0)) for r, n in created.by_role.items()],
        "week_sla": week_sla(session, go_live, period, settings),
        "burn": burn,
        "burn_first": burn[0] if burn else None,
        "burn_last": burn[-1] if burn else None,
        "satisfaction": feedback,
        "rating": f"{feedback.average:.1f}" if feedback.average is not None else "n/a",
        "handover_blocking": blocking,
        "handover_backlog": [t for t in lines if t not in blocking and t not in scheduled],
        "handover_scheduled": scheduled,
        "handover": lines,
        "handover_more": total - len(lines),
        "decision": latest_decision(session),
    }


def _totals(created: q.Tally, resolved: q.Tally, open_now: q.Tally) -> list[tuple[str, int, int, int]]:
    return [(severity_label(s), n, resolved.by_severity.get(s, 0), open_now.by_severity.get(s, 0))
            for s, n in created.by_severity.items()]


def week_sla(session: Session, go_live: date, period: Period, settings: ExitSettings) -> list[WeekSla]:
    """SLA compliance per hypercare week from go-live to now (at most the four weeks), in two scans."""
    firsts = [go_live + timedelta(days=7 * (week - 1)) for week in range(1, HYPERCARE_DAYS // 7 + 1)]
    bounds = [local_midnight(first, period.tz) for first in firsts if local_midnight(first, period.tz) < period.end]
    if not bounds:
        return []
    bounds.append(min(local_midnight(firsts[len(bounds) - 1] + timedelta(days=7), period.tz), period.end))
    answered = q.daily_responses(session, bounds)
    overdue = q.overdue_by_bucket(session, bounds, period.end)
    weeks = []
    for index, ((met, n), late) in enumerate(zip(answered, overdue, strict=True)):
        first = firsts[index]
        figure = sla_figure(met, n + late, settings)
        px = round((figure.share or 0) * WEEK_BAR_PX)
        label = f"Week {index + 1} ({first:%d %b} - {first + timedelta(days=6):%d %b})"
        weeks.append(WeekSla(index + 1, label, figure, px, figure.below))
    return weeks


def burn_down(session: Session, go_live: date, period: Period, settings: ExitSettings) -> list[BurnPoint]:
    """Open tickets at the end of each local day since go-live (the last point is *now*)."""
    today = period.end.astimezone(period.tz).date()
    days = [go_live + timedelta(days=n) for n in range(max(0, (today - go_live).days) + 1)]
    instants = [min(local_midnight(day + timedelta(days=1), period.tz), period.end) for day in days]
    scheduled_levels = tuple(s for s in q.SEVERITIES if s not in settings.backlog_severities)
    backlog = q.backlog_series(session, instants, settings.backlog_severities)
    scheduled = q.backlog_series(session, instants, scheduled_levels) if scheduled_levels else [0] * len(days)
    top = max([1, *(b + s for b, s in zip(backlog, scheduled, strict=True))])

    def px(n: int) -> int:
        return 0 if n == 0 else max(1, round(n * CHART_PX / top))

    return [BurnPoint(day, f"{day:%d.%m}", b, s, px(b), px(s))
            for day, b, s in zip(days, backlog, scheduled, strict=True)]


def sample_pack(now: datetime, line: TicketLine, settings: ExitSettings) -> dict[str, Any]:
    """One entry in every list of the exit pack (``samples.preflight`` renders every template line)."""
    tally = q.Tally(3, {"P1": 1, "P2": 1, "P3": 1, "P4": 0}, {"crm_admin": 3})
    figure = sla_figure(1, 3, settings)
    point = BurnPoint(now.date(), "23.11", 2, 1, 40, 20)
    return {
        "period_start": now, "created": tally, "resolved": tally, "open": tally,
        "totals": [("P1 Critical", 1, 1, 0)], "role_totals": [("CRM admin", 3, 1)],
        "week_sla": [WeekSla(1, "Week 1 (23 Nov - 29 Nov)", figure, 66, True)],
        "burn": [point], "burn_first": point, "burn_last": point,
        "satisfaction": FeedbackSummary(1, 4.0, {1: 0, 2: 0, 3: 0, 4: 1, 5: 0},
                                        [{"key": "HC-1", "rating": 2, "comment": "slow", "at": now}]),
        "rating": "4.0",
        "handover_blocking": [line], "handover_backlog": [line], "handover_scheduled": [line],
        "handover": [line], "handover_more": 1,
    }

