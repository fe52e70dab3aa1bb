"""What a digest template iterates over: pre-worded lines, bars and SLA rows.

Why pre-worded: the text and the HTML part of a digest must say exactly the same
thing, and "overdue by 3h 10m" must not be computed twice in two template
languages; templates only lay these lines out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from notifier.digests.queries import OpenRow, SlaTally
from notifier.labels import role_label, severity_label, status_label
from tickets.sla import SlaPolicy

BAR_PX = 180  # widest HTML bar, pixels
BAR_CHARS = 30  # widest text bar, characters


def duration(seconds: float) -> str:
    """``2d 3h``, ``3h 20m``, ``45m``, ``0m``: short enough for a table cell."""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


@dataclass(frozen=True)
class TicketLine:
    key: str
    subject: str
    severity: str
    severity_label: str
    role: str
    status: str
    age: str
    sla: str
    overdue: bool


def ticket_lines(rows: Sequence[OpenRow], sla: SlaPolicy, now: datetime) -> list[TicketLine]:
    lines = []
    for row in rows:
        overdue = False
        if row.first_response_at is None and row.response_due is not None and sla.is_scheduled(row.severity) \
                and row.response_due > now:
            text = f"scheduled for the sprint starting {row.response_due.astimezone(sla.tz):%a %d %b}"
        elif row.first_response_at is None and row.response_due is not None:
            left = sla.remaining(row.severity, row.response_due, now)
            business = " business time" if sla.uses_business_time(row.severity) else ""
            overdue = left < 0
            text = (f"response overdue by {duration(left)}{business}" if overdue
                    else f"response due in {duration(left)}{business}")
        elif row.resolution_due is not None:
            left = sla.remaining(row.severity, row.resolution_due, now)
            overdue = left < 0
            text = f"resolution overdue by {duration(left)}" if overdue else f"resolution due in {duration(left)}"
        else:
            text = "responded"
        lines.append(TicketLine(
            key=row.key, subject=row.subject or "(no subject)", severity=row.severity,
            severity_label=severity_label(row.severity), role=role_label(row.role), status=status_label(row.status),
            age=duration((now - row.created_at).total_seconds()), sla=text, overdue=overdue,
        ))
    return lines


@dataclass(frozen=True)
class DayBar:
    day: date
    label: str  # "Mon 23 Nov"
    opened: int
    resolved: int
    opened_px: int
    resolved_px: int
    opened_text: str  # "#####"
    resolved_text: str


def day_bars(days: Sequence[date], counts: Sequence[tuple[int, int]]) -> list[DayBar]:
    top = max([1, *(max(o, r) for o, r in counts)])

    def scale(n: int, width: int) -> int:
        return 0 if n == 0 else max(1, round(n * width / top))

    return [
        DayBar(day, day.strftime("%a %d %b"), o, r, scale(o, BAR_PX), scale(r, BAR_PX),
               "#" * scale(o, BAR_CHARS), "=" * scale(r, BAR_CHARS))
        for day, (o, r) in zip(days, counts, strict=True)
    ]


def day_bounds(first: date, days: int, tz: ZoneInfo) -> tuple[list[date], list[datetime]]:
    """The local days from *first* and the UTC instants of their midnights (days + 1 bounds)."""
    dates = [first + timedelta(days=i) for i in range(days)]
    bounds = [local_midnight(first + timedelta(days=i), tz) for i in range(days + 1)]
    return dates, bounds


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


@dataclass(frozen=True)
class SlaLine:
    severity: str
    severity_label: str
    target: str  # "1 hour"
    met: int
    breached: int
    overdue: int
    compliance: str  # "92%" | "n/a"
    on_target: bool | None  # None when nothing was measured


def sla_lines(tallies: dict[str, SlaTally], sla: SlaPolicy, goal: float) -> list[SlaLine]:
    lines = []
    for severity, t in tallies.items():
        share = t.compliance
        lines.append(SlaLine(severity, severity_label(severity), sla.target_label(severity), t.met, t.breached,
                             t.overdue, percent(share), None if share is None else share >= goal))
    return lines
