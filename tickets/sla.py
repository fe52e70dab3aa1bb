"""SLA targets per severity: when a response is due, how much of the clock has run.

Why one policy object: the acknowledgement promises a target ("4 hours", "1 business
day", "next sprint"), the sweep escalates at fractions of it, the dashboard shows time
left, and a pause in ``waiting_on_customer`` moves it; all of them must agree on which
clock a severity runs on.  This module is pure time logic: no database, no mail.

Target strings (``[sla] P1..P4`` and ``[sla.resolution] P1..P4``):

* wall clock, real elapsed seconds day and night, DST-proof because the arithmetic is
  done in UTC: ``"1h"``, ``"4 hours"``, ``"30m"``, ``"2 days"``, ``"1h 30m"``;
* business time (``BusinessCalendar``): ``"1 business day"`` (= one day's worth of
  business hours, 8 h for 09:00-17:00), ``"2 business days"``, ``"4 business hours"``;
* ``"next sprint"``: the start of business on the first day of the next sprint
  (``sprint_start + k * sprint_days``), or the first business start after it when that
  day is a weekend or holiday;
* ``"same business day"`` (meant for resolution): the end of business of the day the
  clock first runs (a ticket opened at night is due at the end of the next business day).

Every target is parsed when the policy is built, so a typo fails at start with one line
(``SlaConfigError``), not when the first ticket of that severity arrives.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from config import SEVERITIES, Config, ConfigError, SlaSettings
from tickets.business_calendar import BusinessCalendar
from tickets.clock import as_utc

WALL = "wall"
BUSINESS = "business"
SPRINT = "sprint"
SAME_DAY = "same_day"

_EXAMPLE = 'use e.g. "4h", "30m", "2 days", "1 business day", "same business day" or "next sprint"'

# canonical unit name -> (seconds, spellings)
_WALL_UNITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "week": (7 * 86400, ("w", "wk", "wks", "week", "weeks")),
    "day": (86400, ("d", "day", "days")),
    "hour": (3600, ("h", "hr", "hrs", "hour", "hours")),
    "minute": (60, ("m", "min", "mins", "minute", "minutes")),
    "second": (1, ("s", "sec", "secs", "second", "seconds")),
}
_BUSINESS_UNITS: dict[str, tuple[str, ...]] = {
    "day": ("d", "day", "days"),
    "hour": ("h", "hr", "hrs", "hour", "hours"),
    "minute": ("m", "min", "mins", "minute", "minutes"),
}
_JUST_BELOW_ONE = 1.0 - 1e-9
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*,?")


class SlaConfigError(ConfigError):
    """An SLA target that cannot be read; the message is the one line shown to the user."""


@dataclass(frozen=True)
class Target:
    """One parsed target: which clock it runs on and how long it is."""

    kind: str  # WALL | BUSINESS | SPRINT | SAME_DAY
    seconds: float  # wall or business seconds; 0 for SPRINT and SAME_DAY
    label: str  # "4 hours", "1 business day", "next sprint"


def parse_target(text: str, day_seconds: float, where: str = "[sla]") -> Target:
    """Read one target string; *day_seconds* is the length of one business day."""
    raw = str(text)
    value = " ".join(raw.strip().lower().split())
    if value in ("next sprint", "next-sprint", "sprint"):
        return Target(SPRINT, 0.0, "next sprint")
    if value in ("same business day", "same day", "same-day"):
        return Target(SAME_DAY, 0.0, "the same business day")
    business = False
    if "business" in value:
        business = True
        value = value.replace("business", " ").strip()
    parts, pos, labels, seconds = [], 0, [], 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        parts.append(match)
        pos = match.end()
    if not parts or pos != len(value):
        raise SlaConfigError(f"{where}: cannot read {raw!r}; {_EXAMPLE}")
    for match in parts:
        amount, unit = float(match.group(1)), match.group(2)
        name = _unit_name(unit, business)
        if name is None:
            raise SlaConfigError(f"{where}: unknown unit {unit!r} in {raw!r}; {_EXAMPLE}")
        if business:
            per = day_seconds if name == "day" else (3600 if name == "hour" else 60)
        else:
            per = _WALL_UNITS[name][0]
        seconds += amount * per
        labels.append(_label(amount, name, business))
    if seconds <= 0:
        raise SlaConfigError(f"{where}: target {raw!r} must be longer than zero; {_EXAMPLE}")
    return Target(BUSINESS if business else WALL, seconds, " ".join(labels))


def _unit_name(unit: str, business: bool) -> str | None:
    if business:
        return next((n for n, spell in _BUSINESS_UNITS.items() if unit in spell), None)
    return next((n for n, (_, spell) in _WALL_UNITS.items() if unit in spell), None)


def _label(amount: float, name: str, business: bool) -> str:
    number = f"{amount:g}"
    noun = f"business {name}" if business else name
    return f"{number} {noun}" if amount == 1 else f"{number} {noun}s"


class SlaPolicy:
    """The response and resolution clocks of each severity."""

    def __init__(
        self,
        sla: SlaSettings,
        calendar: BusinessCalendar,
        sprint_start: date,
        sprint_days: int,
        timezone: ZoneInfo | str,
    ) -> None:
        if sprint_days < 1:
            raise SlaConfigError(f"[hypercare] sprint_days: must be at least 1, got {sprint_days}")
        self.calendar = calendar
        self.sprint_start = sprint_start
        self.sprint_days = sprint_days
        self.tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
        self.escalate_at = tuple(sla.escalate_at)
        day = calendar.day_seconds
        self.targets: dict[str, Target] = {}
        for severity in SEVERITIES:
            if severity not in sla.targets:
                raise SlaConfigError(f'[sla] {severity}: missing target; {_EXAMPLE}')
            self.targets[severity] = parse_target(sla.targets[severity], day, f"[sla] {severity}")
        self.resolution: dict[str, Target] = {
            severity: parse_target(text, day, f"[sla.resolution] {severity}")
            for severity, text in sla.resolution.items()
        }

    @classmethod
    def from_config(cls, config: Config, go_live: date) -> SlaPolicy:
        """The policy of *config*; ``sprint_start`` defaults to *go_live*."""
        settings = config.hypercare
        return cls(
            sla=config.sla,
            calendar=BusinessCalendar.from_settings(settings),
            sprint_start=settings.sprint_start or go_live,
            sprint_days=settings.sprint_days,
            timezone=settings.tz,
        )

    # --- due times ----------------------------------------------------------------------------

    def target(self, severity: str) -> Target:
        try:
            return self.targets[severity]
        except KeyError:
            raise ValueError(f"unknown severity {severity!r}; use one of {', '.join(SEVERITIES)}") from None

    def response_due(self, severity: str, start: datetime) -> datetime:
        """When the first response to a ticket of *severity* opened at *start* is due (UTC)."""
        return self._due(self.target(severity), as_utc(start))

    def resolution_due(self, severity: str, start: datetime) -> datetime | None:
        """When resolution is due, or None when ``[sla.resolution]`` sets no target for it."""
        self.target(severity)
        target = self.resolution.get(severity)
        return None if target is None else self._due(target, as_utc(start))

    def target_label(self, severity: str) -> str:
        """What the acknowledgement promises: "1 hour", "1 business day", "next sprint"."""
        return self.target(severity).label

    def uses_business_time(self, severity: str) -> bool:
        """True when the severity's clock only runs in business hours (P3, and P4 by sprint).

        P4 counts business time too, so its escalations land during working hours and a
        pause over a weekend costs it nothing.
        """
        return self.target(severity).kind != WALL

    def is_scheduled(self, severity: str) -> bool:
        """True when the first response is promised for a sprint, not within a time.

        Such a ticket (P4 by default) is "scheduled" until its sprint starts: the response
        ladder does not chase it and it is never reported as breached (issue 14).
        """
        return self.target(severity).kind == SPRINT

    def resolution_target(self, severity: str) -> Target | None:
        return self.resolution.get(severity)

    def next_sprint_start(self, when: datetime) -> datetime:
        """Business start of the first sprint that begins on a later local day than *when*."""
        today = as_utc(when).astimezone(self.tz).date()
        k = (today - self.sprint_start).days // self.sprint_days + 1
        first_day = self.sprint_start + timedelta(days=k * self.sprint_days)
        return self.calendar.business_start_on_or_after(first_day)

    # --- measuring ----------------------------------------------------------------------------

    def elapsed(self, severity: str, start: datetime, end: datetime) -> float:
        """Seconds from *start* to *end* on the severity's clock; negative if *end* is earlier."""
        return self._elapsed(self.uses_business_time(severity), start, end)

    def _elapsed(self, business: bool, start: datetime, end: datetime) -> float:
        if business:
            return self.calendar.business_seconds_between(start, end)
        return (as_utc(end) - as_utc(start)).total_seconds()

    def remaining(self, severity: str, due: datetime, now: datetime) -> float:
        """Seconds left until *due* on the severity's clock; negative when overdue."""
        return self.elapsed(severity, now, due)

    def shift_for_pause(
        self, severity: str, due: datetime, paused_at: datetime, resumed_at: datetime
    ) -> datetime:
        """The due time after the clock stood still from *paused_at* to *resumed_at*.

        The pause is measured on the severity's own clock: a P3 waiting on the reporter
        over a weekend loses no business time, so its due time moves only by the business
        hours that passed while it waited.
        """
        due, paused_at, resumed_at = as_utc(due), as_utc(paused_at), as_utc(resumed_at)
        if resumed_at < paused_at:
            raise ValueError(
                f"resumed_at {resumed_at.isoformat()} is before paused_at {paused_at.isoformat()}"
            )
        if not self.uses_business_time(severity):
            return due + (resumed_at - paused_at)
        paused = self.calendar.business_seconds_between(paused_at, resumed_at)
        if paused_at < due:
            # The time still left when the clock stopped is granted again from the resume.
            left = self.calendar.business_seconds_between(paused_at, due)
            return self.calendar.add_business_seconds(self.calendar.next_business_start(resumed_at), left)
        return self.calendar.add_business_seconds(due, paused)

    def fraction_elapsed(self, severity: str, start: datetime, due: datetime, now: datetime) -> float:
        """How much of the clock from *start* to *due* has run at *now* (0.0 .. 1.0 and past).

        Never negative; reaches 1.0 exactly at *due* (not before, even on a business clock)
        and *f* exactly at ``at_fraction(..., f)``.  A target of zero length on its clock (a P4
        reported on the weekend before the sprint starts) is 0.0 before due and 1.0 from due.
        """
        return self._fraction(self.uses_business_time(severity), start, due, now)

    def resolution_fraction(self, severity: str, start: datetime, due: datetime, now: datetime) -> float:
        """``fraction_elapsed`` on the clock of the severity's *resolution* target (issue 14)."""
        target = self.resolution.get(severity)
        return self._fraction(target is not None and target.kind != WALL, start, due, now)

    def _fraction(self, business: bool, start: datetime, due: datetime, now: datetime) -> float:
        due_reached = as_utc(now) >= as_utc(due)
        total = self._elapsed(business, start, due)
        if total <= 0:
            return 1.0 if due_reached else 0.0
        # Rounded to 1e-9 so the instant ``at_fraction`` returns (microsecond-rounded)
        # compares >= the level exactly; the sweep can then use plain ``>=``.
        fraction = max(0.0, round(self._elapsed(business, start, now) / total, 9))
        # On a business clock the last business second can be long before *due* (a P4 due
        # Monday 09:00 has used all its business time by Friday 17:00): breach is *due*.
        return max(fraction, 1.0) if due_reached else min(fraction, _JUST_BELOW_ONE)

    def at_fraction(self, severity: str, start: datetime, due: datetime, fraction: float) -> datetime:
        """The instant at which ``fraction_elapsed`` reaches *fraction* (for scheduling)."""
        start, due = as_utc(start), as_utc(due)
        if fraction == 1.0:
            return due
        total = self.elapsed(severity, start, due)
        if total <= 0:
            return due
        # Round *up* to the microsecond, so the fraction at the returned instant is not
        # a hair below the level.
        needed = timedelta(microseconds=math.ceil(total * fraction * 1_000_000))
        if self.uses_business_time(severity):
            return self.calendar.add_business_seconds(start, needed.total_seconds())
        return start + needed

    # --- internals ----------------------------------------------------------------------------

    def _due(self, target: Target, start: datetime) -> datetime:
        if target.kind == WALL:
            return start + timedelta(seconds=target.seconds)
        if target.kind == BUSINESS:
            return self.calendar.add_business_seconds(start, target.seconds)
        if target.kind == SAME_DAY:
            first = self.calendar.next_business_start(start)
            window = self.calendar.window(self.calendar.local_date(first))
            assert window is not None  # next_business_start lands inside a window
            return window[1]
        return self.next_sprint_start(start)
