"""BusinessCalendar: weekends, German public holidays (national and Bavarian), DST, odd inputs."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from config import ConfigError, HypercareSettings, parse_config
from tickets.business_calendar import BusinessCalendar, CalendarConfigError

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.fixture
def cal() -> BusinessCalendar:
    return BusinessCalendar.from_settings(HypercareSettings(timezone="Europe/Berlin", holidays="DE"))


@pytest.fixture
def cal_by() -> BusinessCalendar:
    return BusinessCalendar.from_settings(HypercareSettings(timezone="Europe/Berlin", holidays="DE-BY"))


def test_from_settings_reads_the_config_file_values(tmp_path) -> None:
    config = parse_config(
        {"hypercare": {"timezone": "Europe/Berlin", "business_hours": "08:30-16:30",
                       "business_days": "Mon-Thu", "holidays": "de-by", "extra_holidays": ["2026-12-24"]}},
        base_dir=tmp_path,
    )
    cal = BusinessCalendar.from_settings(config.hypercare)
    assert cal.start == time(8, 30) and cal.end == time(16, 30)
    assert cal.day_seconds == 8 * HOUR
    assert not cal.is_business_day(date(2026, 11, 27))  # Friday is not in Mon-Thu
    assert not cal.is_business_day(date(2026, 12, 24))  # extra holiday
    assert not cal.is_business_day(date(2026, 1, 6))  # Epiphany, Bavaria only
    assert cal.holiday_name(date(2026, 12, 24)) == "Holiday (from config)"


def test_weekends_and_public_holidays(cal: BusinessCalendar, cal_by: BusinessCalendar) -> None:
    assert cal.is_business_day(date(2026, 11, 27))  # Friday
    assert not cal.is_business_day(date(2026, 11, 28))  # Saturday
    assert not cal.is_business_day(date(2026, 11, 29))  # Sunday
    for day in (date(2026, 12, 25), date(2027, 1, 1), date(2026, 10, 3)):
        assert not cal.is_business_day(day), day
        assert cal.holiday_name(day)
    assert cal.is_business_day(date(2026, 12, 24))  # Christmas Eve is a normal working day in DE
    # Regional: Epiphany and Corpus Christi in Bavaria, not nationwide
    for day in (date(2027, 1, 6), date(2027, 5, 27)):
        assert cal.is_business_day(day)
        assert not cal_by.is_business_day(day)
    assert cal.holiday_name(date(2026, 11, 27)) is None


def test_business_time_window_is_local_and_half_open(cal: BusinessCalendar) -> None:
    assert not cal.is_business_time(berlin(2026, 11, 27, 8, 59, 59))
    assert cal.is_business_time(berlin(2026, 11, 27, 9, 0))
    assert cal.is_business_time(berlin(2026, 11, 27, 16, 59, 59))
    assert not cal.is_business_time(berlin(2026, 11, 27, 17, 0))
    # 08:30 UTC is 09:30 in Berlin in winter: business time; naive inputs mean UTC
    assert cal.is_business_time(datetime(2026, 11, 27, 8, 30))
    assert not cal.is_business_time(datetime(2026, 11, 27, 7, 30, tzinfo=UTC))
    assert not cal.is_business_time(berlin(2026, 12, 25, 10, 0))


def test_friday_afternoon_plus_one_business_day_is_monday(cal: BusinessCalendar) -> None:
    due = cal.add_business_seconds(berlin(2026, 11, 27, 16, 0), 8 * HOUR)
    assert due == berlin(2026, 11, 30, 16, 0)
    assert due.tzinfo == UTC


def test_result_at_window_end_stays_on_that_day(cal: BusinessCalendar) -> None:
    assert cal.add_business_seconds(berlin(2026, 11, 27, 16, 0), HOUR) == berlin(2026, 11, 27, 17, 0)
    assert cal.add_business_seconds(berlin(2026, 11, 27, 16, 0), HOUR + 1) == berlin(2026, 11, 30, 9, 0, 1)


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (berlin(2026, 11, 26, 22, 0), berlin(2026, 11, 27, 17, 0)),  # Thursday night
        (berlin(2026, 11, 27, 6, 0), berlin(2026, 11, 27, 17, 0)),  # Friday before hours
        (berlin(2026, 11, 27, 17, 0), berlin(2026, 11, 30, 17, 0)),  # Friday exactly at close
        (berlin(2026, 11, 28, 11, 0), berlin(2026, 11, 30, 17, 0)),  # Saturday
        (berlin(2026, 11, 29, 23, 59), berlin(2026, 11, 30, 17, 0)),  # Sunday late
        (berlin(2026, 11, 30, 0, 30), berlin(2026, 11, 30, 17, 0)),  # Monday 00:30 (still Sunday in UTC)
    ],
)
def test_tickets_outside_business_hours_start_at_next_opening(
    cal: BusinessCalendar, start: datetime, due: datetime
) -> None:
    assert cal.add_business_seconds(start, 8 * HOUR) == due
    assert cal.business_seconds_between(start, due) == 8 * HOUR


def test_christmas_and_new_year(cal: BusinessCalendar, cal_by: BusinessCalendar) -> None:
    # Thu 24 Dec 16:00: 1 h that day, Fri 25 + Sat + Sun skipped, Mon 28 Dec 16:00
    assert cal.add_business_seconds(berlin(2026, 12, 24, 16, 0), 8 * HOUR) == berlin(2026, 12, 28, 16, 0)
    # Thu 31 Dec 15:00 2026: 2 h, Fri 1 Jan holiday, weekend, Mon 4 Jan 15:00
    assert cal.add_business_seconds(berlin(2026, 12, 31, 15, 0), 8 * HOUR) == berlin(2027, 1, 4, 15, 0)
    # Bavaria: Tue 5 Jan 2027 12:00 + 8 h skips Epiphany (Wed 6 Jan) -> Thu 7 Jan 12:00
    assert cal_by.add_business_seconds(berlin(2027, 1, 5, 12, 0), 8 * HOUR) == berlin(2027, 1, 7, 12, 0)
    assert cal.add_business_seconds(berlin(2027, 1, 5, 12, 0), 8 * HOUR) == berlin(2027, 1, 6, 12, 0)


def test_spring_forward_weekend(cal: BusinessCalendar) -> None:
    # 2026-03-29 (last Sunday of March) clocks go 02:00 -> 03:00 in Berlin.
    start = berlin(2026, 3, 27, 16, 0)  # Friday, UTC+1
    due = cal.add_business_seconds(start, 8 * HOUR)
    assert due == berlin(2026, 3, 30, 16, 0)  # Monday 16:00 local, now UTC+2
    assert due == datetime(2026, 3, 30, 14, 0, tzinfo=UTC)
    assert (due - start) == timedelta(days=3) - timedelta(hours=1)  # real time shrank by the lost hour
    assert cal.business_seconds_between(start, due) == 8 * HOUR


def test_spring_forward_on_easter_weekend(cal: BusinessCalendar) -> None:
    """2027: DST starts on Easter Sunday (28 Mar), between Good Friday and Easter Monday."""
    start = berlin(2027, 3, 25, 16, 0)  # Thursday, UTC+1
    due = cal.add_business_seconds(start, 8 * HOUR)
    assert due == berlin(2027, 3, 30, 16, 0)  # Tuesday, UTC+2
    assert due == datetime(2027, 3, 30, 14, 0, tzinfo=UTC)


def test_fall_back_weekend(cal: BusinessCalendar) -> None:
    # 2026-10-25 (last Sunday of October) clocks go 03:00 -> 02:00.
    start = berlin(2026, 10, 23, 16, 0)  # Friday, UTC+2
    due = cal.add_business_seconds(start, 8 * HOUR)
    assert due == berlin(2026, 10, 26, 16, 0)
    assert due == datetime(2026, 10, 26, 15, 0, tzinfo=UTC)
    assert (due - start) == timedelta(days=3, hours=1)
    # The windows themselves stay 8 real hours on both sides of the switch
    for day in (date(2026, 10, 23), date(2026, 10, 26)):
        begin, end = cal.window(day)
        assert (end - begin) == timedelta(hours=8)


def test_dst_inside_business_hours_changes_real_window_length() -> None:
    """Round-the-clock 'business hours' on the switch day: the window is 23 real hours."""
    cal = BusinessCalendar("Europe/Berlin", time(0, 0), time(23, 59), frozenset(range(7)))
    begin, end = cal.window(date(2027, 3, 28))
    assert end - begin == timedelta(hours=22, minutes=59)
    begin, end = cal.window(date(2026, 10, 25))
    assert end - begin == timedelta(hours=24, minutes=59)
    # Sat 23:00 + 2 business hours: 00:59 left on Saturday, then Sunday from 00:00
    assert cal.add_business_seconds(berlin(2027, 3, 27, 23, 0), 2 * HOUR) == berlin(2027, 3, 28, 1, 1)


def test_business_seconds_between_is_signed_and_spans_weeks(cal: BusinessCalendar) -> None:
    start, end = berlin(2026, 11, 23, 9, 0), berlin(2026, 12, 7, 9, 0)
    assert cal.business_seconds_between(start, end) == 10 * 8 * HOUR
    assert cal.business_seconds_between(end, start) == -10 * 8 * HOUR
    assert cal.business_seconds_between(start, start) == 0
    # Across Christmas week 2026: Mon 21 .. Fri 1 Jan: 21,22,23,24, 28,29,30,31 = 8 days
    assert cal.business_seconds_between(berlin(2026, 12, 21, 0, 0), berlin(2027, 1, 2, 0, 0)) == 8 * 8 * HOUR
    # Night-time span holds no business time
    assert cal.business_seconds_between(berlin(2026, 11, 27, 18, 0), berlin(2026, 11, 30, 8, 0)) == 0


def test_add_and_between_agree_for_many_starts(cal_by: BusinessCalendar) -> None:
    """Property: between(start, add(start, s)) == s for starts every 97 minutes over 2 months."""
    start = berlin(2026, 10, 20, 0, 0)
    for i in range(900):
        when = start + timedelta(minutes=97 * i)
        for seconds in (60.0, 4 * HOUR, 8 * HOUR, 30 * HOUR):
            due = cal_by.add_business_seconds(when, seconds)
            assert cal_by.business_seconds_between(when, due) == seconds, (when, seconds)
            assert cal_by.is_business_time(due - timedelta(seconds=1))


def test_next_business_start(cal: BusinessCalendar) -> None:
    inside = berlin(2026, 11, 27, 10, 15)
    assert cal.next_business_start(inside) == inside
    assert cal.next_business_start(berlin(2026, 11, 27, 17, 0)) == berlin(2026, 11, 30, 9, 0)
    assert cal.next_business_start(berlin(2026, 12, 24, 18, 0)) == berlin(2026, 12, 28, 9, 0)
    assert cal.next_business_start(berlin(2026, 3, 29, 2, 30)) == berlin(2026, 3, 30, 9, 0)  # in the DST gap
    assert cal.next_business_start(berlin(2027, 3, 28, 2, 30)) == berlin(2027, 3, 30, 9, 0)  # Easter
    assert cal.business_start_on_or_after(date(2026, 12, 26)) == berlin(2026, 12, 28, 9, 0)


def test_zero_seconds_returns_start(cal: BusinessCalendar) -> None:
    when = berlin(2026, 11, 28, 12, 0)
    assert cal.add_business_seconds(when, 0) == when


@pytest.mark.parametrize(
    ("code", "fragment"),
    [("XX", "unknown country 'XX'"), ("DE-ZZ", "DE has no region 'ZZ'")],
)
def test_bad_holiday_code_is_one_line_config_error(code: str, fragment: str) -> None:
    with pytest.raises(CalendarConfigError) as err:
        BusinessCalendar.from_settings(HypercareSettings(holidays=code))
    message = str(err.value)
    assert isinstance(err.value, ConfigError)
    assert message.startswith("[hypercare] holidays:") and fragment in message and "\n" not in message


def test_no_business_days_is_a_config_error() -> None:
    with pytest.raises(CalendarConfigError, match=r"\[hypercare\] business_days"):
        BusinessCalendar(business_days=frozenset())


def test_all_days_holidays_stops_instead_of_looping() -> None:
    cal = BusinessCalendar(business_days=frozenset({0}), extra_holidays=tuple(
        date(2026, 1, 5) + timedelta(weeks=w) for w in range(600)
    ))
    with pytest.raises(CalendarConfigError, match="no business day within ten years"):
        cal.add_business_seconds(datetime(2026, 1, 1, tzinfo=UTC), HOUR)
