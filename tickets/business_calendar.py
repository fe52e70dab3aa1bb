"""Business time: which instants count towards a business-hours SLA (P3, P4).

Why its own module: "1 business day" is promised in every P3 acknowledgement, so the
arithmetic must be right across weekends, public holidays (country and region, via the
well-kept ``holidays`` package, plus extra dates from config) and DST switches.  All
reasoning happens on *local* wall-clock windows (09:00-17:00 in ``[hypercare] timezone``),
which are then turned into aware UTC instants; every result is aware UTC, every input
may be aware in any zone or naive (= UTC, the convention of ``tickets.clock``).

Business time is the union of one window per business day, ``[day@start, day@end)`` in
local time.  A window's length is measured in real seconds, so on the rare day a DST
switch falls inside business hours that window is an hour shorter or longer.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from config import ConfigError, HypercareSettings
from tickets.clock import as_utc

# Ten years of days without a single business day means a configuration that can never
# be satisfied; stop instead of looping forever.
_MAX_SCAN_DAYS = 3660


class CalendarConfigError(ConfigError):
    """The calendar settings cannot work; the message is the one line shown to the user."""


class BusinessCalendar:
    """Business days and hours in one timezone, with public holidays skipped."""

    def __init__(
        self,
        timezone: ZoneInfo | str = "UTC",
        start: time = time(9, 0),
        end: time = time(17, 0),
        business_days: frozenset[int] | set[int] = frozenset(range(5)),
        holidays: str = "",
        extra_holidays: tuple[date, ...] | list[date] = (),
    ) -> None:
        self.tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(timezone)
        if start >= end:
            raise CalendarConfigError(
                f"[hypercare] business_hours: start {start:%H:%M} must be before end {end:%H:%M}"
            )
        if not business_days:
            raise CalendarConfigError('[hypercare] business_days: no business days; use e.g. "Mon-Fri"')
        self.start = start
        self.end = end
        self.business_days = frozenset(business_days)
        self.holidays_code = holidays
        self._public = _public_holidays(holidays)
        self._extra = frozenset(extra_holidays)
        self._windows: dict[date, tuple[datetime, datetime] | None] = {}

    @classmethod
    def from_settings(cls, settings: HypercareSettings) -> BusinessCalendar:
        return cls(
            timezone=settings.tz,
            start=settings.business_start,
            end=settings.business_end,
            business_days=settings.business_days,
            holidays=settings.holidays,
            extra_holidays=settings.extra_holidays,
        )

    # --- days ---------------------------------------------------------------------------------

    @property
    def day_seconds(self) -> float:
        """Nominal length of one business day (17:00 - 09:00 = 8 h): what "1 business day" means."""
        start = datetime.combine(date.min, self.start)
        end = datetime.combine(date.min, self.end)
        return (end - start).total_seconds()

    def holiday_name(self, day: date) -> str | None:
        """The holiday's name (for digests), or None on an ordinary day."""
        if day in self._extra:
            return "Holiday (from config)"
        if self._public is not None and day in self._public:
            return str(self._public.get(day))
        return None

    def is_holiday(self, day: date) -> bool:
        return day in self._extra or (self._public is not None and day in self._public)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.business_days and not self.is_holiday(day)

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The business window of *day* as aware UTC ``(start, end)``, or None when closed."""
        if day not in self._windows:
            if self.is_business_day(day):
                self._windows[day] = (self._utc(day, self.start), self._utc(day, self.end))
            else:
                self._windows[day] = None
        return self._windows[day]

    # --- instants -----------------------------------------------------------------------------

    def local_date(self, when: datetime) -> date:
        return as_utc(when).astimezone(self.tz).date()

    def is_business_time(self, when: datetime) -> bool:
        when = as_utc(when)
        span = self.window(self.local_date(when))
        return span is not None and span[0] <= when < span[1]

    def next_business_start(self, when: datetime) -> datetime:
        """The first instant at or after *when* that is business time (*when* itself if it is).

        This is where a business-hours clock really starts for a ticket reported at night,
        on a weekend or on a holiday.
        """
        when = as_utc(when)
        for span in self._spans_from(when):
            if when < span[1]:
                return max(when, span[0])
        raise self._never()  # pragma: no cover - _spans_from raises first

    def add_business_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant *seconds* of business time after *start* (aware UTC).

        Ends exactly at a window's end rather than at the next window's start (a P3 due
        "Friday 17:00" is still due that Friday).  ``seconds <= 0`` returns *start*.
        """
        start = as_utc(start)
        if seconds <= 0:
            return start
        remaining = timedelta(seconds=seconds)
        for begin, end in self._spans_from(start):
            if start >= end:
                continue
            cursor = max(start, begin)
            available = end - cursor
            if remaining <= available:
                return cursor + remaining
            remaining -= available
        raise self._never()  # pragma: no cover - _spans_from raises first

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Business seconds from *start* to *end*; negative when *end* is before *start*.

        Signed so that "time left until due" and "overdue by" are one call.
        """
        start, end = as_utc(start), as_utc(end)
        if end < start:
            return -self.business_seconds_between(end, start)
        total = timedelta(0)
        day = self.local_date(start)
        last = self.local_date(end)
        while day <= last:
            span = self.window(day)
            if span is not None:
                lo, hi = max(start, span[0]), min(end, span[1])
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds()

    def business_start_on_or_after(self, day: date) -> datetime:
        """Start of business on *day*, or on the first business day after it (aware UTC)."""
        for offset in range(_MAX_SCAN_DAYS):
            span = self.window(day + timedelta(days=offset))
            if span is not None:
                return span[0]
        raise self._never()

    # --- internals ----------------------------------------------------------------------------

    def _utc(self, day: date, clock_time: time) -> datetime:
        """Local wall time on *day* as aware UTC.

        zoneinfo resolves a time inside a spring-forward gap with the pre-switch offset
        (02:30 becomes 03:30 summer time) and a repeated autumn time as its first occurrence.
        """
        return as_utc(datetime.combine(day, clock_time, tzinfo=self.tz))

    def _spans_from(self, when: datetime):
        """Business windows of the local day of *when* and every day after it."""
        day = self.local_date(when)
        for offset in range(_MAX_SCAN_DAYS):
            span = self.window(day + timedelta(days=offset))
            if span is not None:
                yield span
        raise self._never()

    def _never(self) -> CalendarConfigError:
        return CalendarConfigError(
            "[hypercare] business_days/extra_holidays: no business day within ten years; "
            'check business_days (e.g. "Mon-Fri") and extra_holidays'
        )

    def __repr__(self) -> str:
        days = ",".join(str(d) for d in sorted(self.business_days))
        return (
            f"BusinessCalendar({self.tz.key}, {self.start:%H:%M}-{self.end:%H:%M}, days={days}, "
            f"holidays={self.holidays_code or '-'}, extra={len(self._extra)})"
        )


def _public_holidays(code: str) -> holidays_lib.HolidayBase | None:
    """``"DE"`` or ``"DE-BY"`` (country, optional region) -> a lazily-filled holidays table."""
    code = code.strip()
    if not code:
        return None
    country, _, region = code.partition("-")
    example = 'use a code like "DE" or "DE-BY"'
    try:
        entity = holidays_lib.country_holidays(country.upper())
    except NotImplementedError:
        raise CalendarConfigError(
            f"[hypercare] holidays: unknown country {country!r}; {example}"
        ) from None
    if not region:
        return entity
    known = {name.upper(): name for name in entity.subdivisions}
    known.update({alias.upper(): alias for alias in getattr(entity, "subdivisions_aliases", {})})
    canonical = known.get(region.upper())
    if canonical is None:
        raise CalendarConfigError(
            f"[hypercare] holidays: {country.upper()} has no region {region!r}; "
            f"known: {', '.join(sorted(entity.subdivisions))}"
        )
    return holidays_lib.country_holidays(country.upper(), subdiv=canonical)
