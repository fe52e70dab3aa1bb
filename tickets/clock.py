"""The one source of "now".

Why: SLA timers, escalations and the hypercare cadence must be testable across four
weeks in milliseconds, so nothing reads the wall clock directly; everything gets a
``Clock`` passed in.  ``--now`` on the CLI builds a ``FrozenClock``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to: for ``--now`` and for tests."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = as_utc(when)

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now


class OffsetClock:
    """The wall clock shifted so that it started at a given instant (``run --now``)."""

    def __init__(self, start: datetime, base: Clock | None = None) -> None:
        self._base = base or SystemClock()
        self._offset = as_utc(start) - self._base.now()

    def now(self) -> datetime:
        return self._base.now() + self._offset


def as_utc(when: datetime) -> datetime:
    """Naive datetimes (as SQLite returns them) are UTC by our convention."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def parse_instant(text: str, tz: tzinfo = UTC) -> datetime:
    """Parse ``--now``: ISO-8601, with ``Z`` accepted; without an offset it is local time in *tz*
    (``[hypercare] timezone``), the way a project manager reads "2026-12-07T09:00"."""
    when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return as_utc(when.replace(tzinfo=tz) if when.tzinfo is None else when)
