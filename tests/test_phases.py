"""Hypercare phases and cadence, exact for every day from before go-live to day 40."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tickets.phases import (
    Phase,
    day_number,
    exit_report_day,
    phase_on,
    status_days,
    status_due_on,
    weekly_summary_due_on,
    weeks_label,
)

GO_LIVE = date(2026, 11, 23)  # a Monday


def expected(n: int) -> tuple[str, int, str, bool]:
    """The DESIGN.md table written out independently of the implementation."""
    if n <= 6:
        return "intensive", 1, "daily", True
    if n <= 13:
        return "stabilisation", 2, "every other day", n in (7, 9, 11, 13)
    if n <= 20:
        return "transition", 3, "weekly", n == 14
    if n <= 27:
        return "transition", 4, "weekly", n == 21
    return "normal", n // 7 + 1, "none", False


@pytest.mark.parametrize("n", range(0, 41))
def test_each_day_from_go_live_to_day_40(n: int) -> None:
    day = GO_LIVE + timedelta(days=n)
    key, week, cadence, status = expected(n)
    phase = phase_on(GO_LIVE, day)
    assert day_number(GO_LIVE, day) == n
    assert (phase.key, phase.week, phase.cadence) == (key, week, cadence)
    assert status_due_on(GO_LIVE, day) is status
    assert phase.asks
    if key == "normal":
        assert phase.title == f"Week {week} after go-live: normal support"
    else:
        assert phase.title == f"Week {week} of hypercare: {key}"


def test_status_days_are_exactly_the_design_list() -> None:
    sent = [n for n in range(-10, 120) if status_due_on(GO_LIVE, GO_LIVE + timedelta(days=n))]
    assert sent == [0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 21]
    assert status_days(GO_LIVE) == [GO_LIVE + timedelta(days=n) for n in sent]


def test_titles_and_asks_for_the_status_email() -> None:
    assert phase_on(GO_LIVE, date(2026, 12, 1)) == Phase(
        "stabilisation", 2, "Week 2 of hypercare: stabilisation", "all P1/P2 resolved; backlog falling",
        "every other day",
    )
    assert "P1" in phase_on(GO_LIVE, GO_LIVE).asks
    assert "exit criteria" in phase_on(GO_LIVE, date(2026, 12, 20)).asks
    assert "hand-over" in phase_on(GO_LIVE, date(2026, 12, 8)).asks


def test_before_go_live_nothing_is_due() -> None:
    day = GO_LIVE - timedelta(days=3)
    phase = phase_on(GO_LIVE, day)
    assert day_number(GO_LIVE, day) == -3
    assert (phase.key, phase.week, phase.cadence) == ("intensive", 0, "none")
    assert "2026-11-23" in phase.title
    assert not status_due_on(GO_LIVE, day)
    assert not weekly_summary_due_on(GO_LIVE, GO_LIVE - timedelta(days=7), 0)


@pytest.mark.parametrize(("weekday", "first"), [(0, 7), (2, 9), (6, 13)])
def test_weekly_summary_once_a_full_week_exists(weekday: int, first: int) -> None:
    # Never on go-live morning with no data: the first summary covers days 0-6 at the earliest.
    due = [n for n in range(-14, 70) if weekly_summary_due_on(GO_LIVE, GO_LIVE + timedelta(days=n), weekday)]
    assert due == list(range(first, 70, 7))


def test_weekly_summary_with_midweek_go_live() -> None:
    go_live = date(2026, 11, 25)  # Wednesday
    days = (go_live + timedelta(days=n) for n in range(-7, 15))
    due = [d for d in days if weekly_summary_due_on(go_live, d, 0)]
    assert due == [date(2026, 12, 7)]  # Mon 30 Nov is day 5: not a full week yet


def test_exit_report_on_the_last_business_day_of_week_4() -> None:
    def weekdays(day: date) -> bool:
        return day.weekday() < 5

    assert exit_report_day(GO_LIVE, weekdays) == date(2026, 12, 18)  # Friday, not Sunday day 27
    assert exit_report_day(GO_LIVE, lambda day: weekdays(day) and day != date(2026, 12, 18)) == date(2026, 12, 17)
    assert exit_report_day(GO_LIVE, lambda day: False) == date(2026, 12, 20)  # no business day: day 27
    assert exit_report_day(GO_LIVE, weekdays, override=date(2026, 12, 22)) == date(2026, 12, 22)
    assert exit_report_day(date(2026, 11, 25), weekdays) == date(2026, 12, 22)  # Wednesday go-live: Tue of week 4


def test_weeks_label_comes_from_phase_on() -> None:
    assert weeks_label(GO_LIVE, GO_LIVE, GO_LIVE + timedelta(days=6)) == "Week 1"
    assert weeks_label(GO_LIVE, GO_LIVE + timedelta(days=5), GO_LIVE + timedelta(days=11)) == "Weeks 1-2"


def test_exit_report_day_without_calendar_is_day_27() -> None:
    assert exit_report_day(GO_LIVE) == date(2026, 12, 20)
    assert day_number(GO_LIVE, exit_report_day(GO_LIVE)) == 27
    assert phase_on(GO_LIVE, exit_report_day(GO_LIVE)).week == 4
    assert phase_on(GO_LIVE, exit_report_day(GO_LIVE) + timedelta(days=1)).key == "normal"


def test_phase_is_frozen() -> None:
    phase = phase_on(GO_LIVE, GO_LIVE)
    with pytest.raises(AttributeError):
        phase.key = "normal"  # type: ignore[misc]
