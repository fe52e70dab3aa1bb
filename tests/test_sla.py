"""SlaPolicy: due times per severity, labels, pauses and escalation fractions on the FrozenClock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from config import SEVERITIES, Config, ConfigError, HypercareSettings, SlaSettings, parse_config
from tickets.business_calendar import BusinessCalendar
from tickets.clock import FrozenClock
from tickets.sla import BUSINESS, SPRINT, WALL, SlaConfigError, SlaPolicy, parse_target

BERLIN = ZoneInfo("Europe/Berlin")
GO_LIVE = date(2026, 11, 23)  # Monday
HOUR = 3600.0


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def make_config(tmp_path, sla: dict | None = None, **hypercare: object) -> Config:
    data: dict = {"hypercare": {"timezone": "Europe/Berlin", "holidays": "DE", **hypercare}}
    if sla is not None:
        data["sla"] = sla
    return parse_config(data, base_dir=tmp_path)


@pytest.fixture
def policy(tmp_path) -> SlaPolicy:
    return SlaPolicy.from_config(make_config(tmp_path), GO_LIVE)


# --- targets and labels -----------------------------------------------------------------------


def test_default_labels_and_clocks(policy: SlaPolicy) -> None:
    labels = [policy.target_label(s) for s in SEVERITIES]
    assert labels == ["1 hour", "4 hours", "1 business day", "next sprint"]
    assert [policy.uses_business_time(s) for s in SEVERITIES] == [False, False, True, True]
    assert policy.sprint_start == GO_LIVE and policy.sprint_days == 14


@pytest.mark.parametrize(
    ("text", "kind", "seconds", "label"),
    [
        ("1h", WALL, 3600, "1 hour"),
        ("4h", WALL, 4 * 3600, "4 hours"),
        ("30m", WALL, 1800, "30 minutes"),
        ("2 days", WALL, 2 * 86400, "2 days"),
        ("90 Minutes", WALL, 5400, "90 minutes"),
        ("1h 30m", WALL, 5400, "1 hour 30 minutes"),
        ("1.5h", WALL, 5400, "1.5 hours"),
        ("1 business day", BUSINESS, 8 * 3600, "1 business day"),
        ("2 Business Days", BUSINESS, 16 * 3600, "2 business days"),
        ("4 business hours", BUSINESS, 4 * 3600, "4 business hours"),
        ("next sprint", SPRINT, 0, "next sprint"),
    ],
)
def test_parse_target(text: str, kind: str, seconds: float, label: str) -> None:
    target = parse_target(text, day_seconds=8 * HOUR)
    assert (target.kind, target.seconds, target.label) == (kind, seconds, label)


@pytest.mark.parametrize("bad", ["", "soon", "4", "h4", "4 parsecs", "0h", "1 business week", "4h then"])
def test_bad_target_is_one_line_naming_the_key(tmp_path, bad: str) -> None:
    with pytest.raises(SlaConfigError) as err:
        SlaPolicy.from_config(make_config(tmp_path, sla={"P2": bad}), GO_LIVE)
    message = str(err.value)
    assert isinstance(err.value, ConfigError)
    assert message.startswith("[sla] P2:") and '"4h"' in message and "\n" not in message


def test_bad_resolution_target_names_its_key(tmp_path) -> None:
    with pytest.raises(SlaConfigError, match=r"^\[sla.resolution\] P3: cannot read 'whenever'"):
        SlaPolicy.from_config(make_config(tmp_path, sla={"resolution": {"P3": "whenever"}}), GO_LIVE)


def test_unknown_severity_is_value_error(policy: SlaPolicy) -> None:
    with pytest.raises(ValueError, match="unknown severity 'P9'"):
        policy.response_due("P9", berlin(2026, 11, 27, 10, 0))


def test_bad_sprint_days(tmp_path) -> None:
    with pytest.raises(SlaConfigError, match=r"\[hypercare\] sprint_days"):
        SlaPolicy.from_config(make_config(tmp_path, sprint_days=0), GO_LIVE)


# --- the scenarios of issue 5 -----------------------------------------------------------------


def test_p3_friday_1600_is_due_monday_1600(policy: SlaPolicy) -> None:
    clock = FrozenClock(berlin(2026, 11, 27, 16, 0))
    opened = clock.now()
    due = policy.response_due("P3", opened)
    assert due == berlin(2026, 11, 30, 16, 0)
    clock.set(berlin(2026, 11, 28, 12, 0))  # Saturday: one business hour has run
    assert policy.elapsed("P3", opened, clock.now()) == HOUR
    assert policy.fraction_elapsed("P3", opened, due, clock.now()) == 1 / 8
    clock.set(berlin(2026, 11, 30, 12, 0))  # Monday noon: 1 h + 3 h
    assert policy.fraction_elapsed("P3", opened, due, clock.now()) == 0.5
    clock.set(due)
    assert policy.fraction_elapsed("P3", opened, due, clock.now()) == 1.0


def test_p3_across_dst_and_holiday(policy: SlaPolicy) -> None:
    # Fri 23 Oct 2026 16:00 (UTC+2); DST ends Sun 25 Oct -> Mon 26 Oct 16:00 (UTC+1)
    assert policy.response_due("P3", berlin(2026, 10, 23, 16, 0)) == datetime(2026, 10, 26, 15, 0, tzinfo=UTC)
    # Fri 2 Oct 2026 16:00; Sat 3 Oct is German Unity Day (a Saturday, no effect) -> Mon 5 Oct
    assert policy.response_due("P3", berlin(2026, 10, 2, 16, 0)) == berlin(2026, 10, 5, 16, 0)
    # Thu 24 Dec 2026 16:00 -> 25/26 Dec + weekend -> Mon 28 Dec 16:00
    assert policy.response_due("P3", berlin(2026, 12, 24, 16, 0)) == berlin(2026, 12, 28, 16, 0)
    # Thu 31 Dec 2026 10:00 -> 7 h that day, New Year on Friday -> Mon 4 Jan 10:00
    assert policy.response_due("P3", berlin(2026, 12, 31, 10, 0)) == berlin(2027, 1, 4, 10, 0)


def test_p3_regional_holiday_in_bavaria(tmp_path) -> None:
    national = SlaPolicy.from_config(make_config(tmp_path, holidays="DE"), GO_LIVE)
    bavaria = SlaPolicy.from_config(make_config(tmp_path, holidays="DE-BY"), GO_LIVE)
    opened = berlin(2027, 1, 5, 14, 0)  # Tuesday; Wed 6 Jan is Epiphany in Bavaria
    assert national.response_due("P3", opened) == berlin(2027, 1, 6, 14, 0)
    assert bavaria.response_due("P3", opened) == berlin(2027, 1, 7, 14, 0)


@pytest.mark.parametrize(
    ("opened", "due"),
    [
        (berlin(2026, 11, 27, 20, 0), berlin(2026, 11, 30, 17, 0)),  # Friday evening
        (berlin(2026, 11, 28, 9, 30), berlin(2026, 11, 30, 17, 0)),  # Saturday morning
        (berlin(2026, 11, 30, 3, 0), berlin(2026, 11, 30, 17, 0)),  # Monday night
        (berlin(2026, 11, 30, 9, 0), berlin(2026, 11, 30, 17, 0)),  # Monday at opening
    ],
)
def test_p3_outside_business_hours(policy: SlaPolicy, opened: datetime, due: datetime) -> None:
    assert policy.response_due("P3", opened) == due
    # Nothing runs before the desk opens
    assert policy.fraction_elapsed("P3", opened, due, berlin(2026, 11, 30, 8, 59)) == 0.0


def test_p1_p2_wall_clock_across_dst(policy: SlaPolicy) -> None:
    # 01:30 on the spring-forward night: 1 h later is 03:30 local (02:xx does not exist)
    opened = berlin(2026, 3, 29, 1, 30)
    due = policy.response_due("P1", opened)
    assert (due - opened).total_seconds() == 3600
    assert due.astimezone(BERLIN).hour == 3 and due.astimezone(BERLIN).minute == 30
    # 01:30 on the fall-back night (first 02:xx is CEST): 4 h real = 04:30 local, not 05:30
    opened = berlin(2026, 10, 25, 1, 30)
    due = policy.response_due("P2", opened)
    assert (due - opened).total_seconds() == 4 * 3600
    assert due.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 10, 25, 4, 30)
    # Saturday and holidays make no difference to P1/P2
    opened = berlin(2026, 12, 25, 23, 30)
    assert policy.response_due("P1", opened) == berlin(2026, 12, 26, 0, 30)
    assert policy.elapsed("P2", opened, opened + timedelta(hours=2)) == 2 * HOUR


def test_wall_clock_overrides(tmp_path) -> None:
    policy = SlaPolicy.from_config(make_config(tmp_path, sla={"P1": "30m", "P2": "2 days"}), GO_LIVE)
    opened = berlin(2026, 10, 24, 12, 0)  # Saturday before the fall-back night
    assert policy.response_due("P1", opened) == berlin(2026, 10, 24, 12, 30)
    assert policy.response_due("P2", opened) - opened == timedelta(hours=48)
    assert policy.target_label("P2") == "2 days"


def test_p3_override_to_business_hours(tmp_path) -> None:
    policy = SlaPolicy.from_config(make_config(tmp_path, sla={"P3": "4 business hours"}), GO_LIVE)
    assert policy.response_due("P3", berlin(2026, 11, 27, 15, 0)) == berlin(2026, 11, 30, 11, 0)
    assert policy.target_label("P3") == "4 business hours"


def test_p4_next_sprint(policy: SlaPolicy) -> None:
    # Sprints start Mondays 23 Nov, 7 Dec, 21 Dec 2026, 4 Jan 2027 ...
    assert policy.response_due("P4", berlin(2026, 11, 23, 8, 0)) == berlin(2026, 12, 7, 9, 0)
    assert policy.response_due("P4", berlin(2026, 11, 27, 16, 0)) == berlin(2026, 12, 7, 9, 0)
    assert policy.response_due("P4", berlin(2026, 12, 6, 23, 59)) == berlin(2026, 12, 7, 9, 0)
    assert policy.response_due("P4", berlin(2026, 12, 7, 8, 0)) == berlin(2026, 12, 21, 9, 0)
    assert policy.response_due("P4", berlin(2026, 12, 21, 16, 0)) == berlin(2027, 1, 4, 9, 0)
    # Before go-live the sprint grid extends backwards
    assert policy.response_due("P4", berlin(2026, 11, 20, 12, 0)) == berlin(2026, 11, 23, 9, 0)


def test_p4_sprint_starting_on_a_holiday_waits_for_business(tmp_path) -> None:
    # Sprints of 7 days from Fri 18 Dec 2026: the next starts Fri 25 Dec (Christmas) -> Mon 28 Dec
    policy = SlaPolicy.from_config(make_config(tmp_path, sprint_start="2026-12-18", sprint_days=7), GO_LIVE)
    assert policy.response_due("P4", berlin(2026, 12, 21, 10, 0)) == berlin(2026, 12, 28, 9, 0)
    # ... and a sprint starting across the fall-back switch starts at 09:00 local time
    policy = SlaPolicy.from_config(make_config(tmp_path, sprint_start="2026-10-12"), GO_LIVE)
    assert policy.response_due("P4", berlin(2026, 10, 20, 10, 0)) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


def test_resolution_targets(tmp_path) -> None:
    config = make_config(tmp_path, sla={"resolution": {"P1": "8h", "P3": "5 business days"}})
    policy = SlaPolicy.from_config(config, GO_LIVE)
    opened = berlin(2026, 11, 27, 16, 0)
    assert policy.resolution_due("P1", opened) == berlin(2026, 11, 28, 0, 0)
    assert policy.resolution_due("P2", opened) == berlin(2026, 12, 1, 16, 0)  # default: 2 business days
    assert policy.resolution_due("P3", opened) == berlin(2026, 12, 4, 16, 0)
    assert policy.resolution_due("P4", opened) is None
    defaults = SlaPolicy.from_config(make_config(tmp_path), GO_LIVE)
    # Issue 14's phase goal "all P1 resolved the same day": the end of that business day ...
    assert defaults.resolution_due("P1", opened) == berlin(2026, 11, 27, 17, 0)
    # ... or, reported at night / on the weekend, the end of the next business day.
    assert defaults.resolution_due("P1", berlin(2026, 11, 28, 3, 0)) == berlin(2026, 11, 30, 17, 0)
    assert defaults.resolution_target("P1").label == "the same business day"
    off = SlaPolicy.from_config(make_config(tmp_path, sla={"resolution": {"P2": "none"}}), GO_LIVE)
    assert off.resolution_due("P2", opened) is None and off.resolution_due("P1", opened) is not None


def test_embedded_defaults_run_in_utc() -> None:
    policy = SlaPolicy.from_config(Config(), GO_LIVE)
    opened = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    assert policy.response_due("P3", opened) == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert policy.response_due("P1", opened) == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


def test_constructor_takes_explicit_parts() -> None:
    calendar = BusinessCalendar.from_settings(HypercareSettings(timezone="Europe/Berlin"))
    policy = SlaPolicy(SlaSettings(), calendar, GO_LIVE, 14, "Europe/Berlin")
    assert policy.response_due("P4", berlin(2026, 11, 24, 10, 0)) == berlin(2026, 12, 7, 9, 0)


# --- pause and resume -------------------------------------------------------------------------


def test_pause_shifts_wall_clock_by_real_time(policy: SlaPolicy) -> None:
    opened = berlin(2026, 11, 27, 10, 0)
    due = policy.response_due("P2", opened)  # 14:00
    shifted = policy.shift_for_pause("P2", due, berlin(2026, 11, 27, 11, 0), berlin(2026, 11, 27, 12, 30))
    assert shifted == berlin(2026, 11, 27, 15, 30)


def test_pause_over_weekend_costs_p3_only_business_time(policy: SlaPolicy) -> None:
    clock = FrozenClock(berlin(2026, 11, 26, 14, 0))  # Thursday 14:00
    opened = clock.now()
    due = policy.response_due("P3", opened)
    assert due == berlin(2026, 11, 27, 14, 0)
    clock.set(berlin(2026, 11, 27, 12, 0))  # Friday noon: #wait, 2 business hours left
    paused_at = clock.now()
    clock.set(berlin(2026, 11, 30, 10, 0))  # customer answers Monday 10:00
    shifted = policy.shift_for_pause("P3", due, paused_at, clock.now())
    assert shifted == berlin(2026, 11, 30, 12, 0)
    assert policy.remaining("P3", shifted, clock.now()) == 2 * HOUR
    # Paused and resumed within one night: nothing changes
    assert policy.shift_for_pause("P3", due, berlin(2026, 11, 26, 18, 0), berlin(2026, 11, 27, 8, 0)) == due


def test_pause_after_breach_keeps_the_overdue_amount(policy: SlaPolicy) -> None:
    due = berlin(2026, 11, 27, 14, 0)
    shifted = policy.shift_for_pause("P3", due, berlin(2026, 11, 27, 15, 0), berlin(2026, 11, 30, 10, 0))
    # Paused 3 business hours (Fri 15-17, Mon 9-10): due moves to Fri 17:00, still 1 h overdue at resume
    assert shifted == berlin(2026, 11, 27, 17, 0)
    assert policy.remaining("P3", shifted, berlin(2026, 11, 30, 10, 0)) == -HOUR
    with pytest.raises(ValueError, match="before paused_at"):
        policy.shift_for_pause("P3", due, berlin(2026, 11, 27, 15, 0), berlin(2026, 11, 27, 14, 0))


def test_pause_of_p4_in_business_time(policy: SlaPolicy) -> None:
    due = policy.response_due("P4", berlin(2026, 12, 3, 10, 0))
    assert due == berlin(2026, 12, 7, 9, 0)
    # Waiting Fri 16:00 .. Mon 11:00 = 1 h + 2 h of business time
    shifted = policy.shift_for_pause("P4", due, berlin(2026, 12, 4, 16, 0), berlin(2026, 12, 7, 11, 0))
    assert shifted == berlin(2026, 12, 7, 12, 0)  # 1 h left at pause, granted from Mon 11:00


# --- escalation fractions ---------------------------------------------------------------------


def test_p2_fractions_on_the_ladder(policy: SlaPolicy) -> None:
    clock = FrozenClock(berlin(2026, 11, 28, 22, 0))  # Saturday night, P2 runs anyway
    opened = clock.now()
    due = policy.response_due("P2", opened)
    seen = []
    for _ in range(5 * 4 + 1):  # every 15 minutes for 5 hours
        seen.append(policy.fraction_elapsed("P2", opened, due, clock.now()))
        clock.advance(minutes=15)
    assert seen[0] == 0.0 and seen[8] == 0.5 and seen[16] == 1.0 and seen[20] == 1.25
    assert sum(1 for f in seen if f >= 0.8) == 8  # 80 % at 3 h 12 min -> ticks 3:15 .. 5:00
    for level in policy.escalate_at:
        at = policy.at_fraction("P2", opened, due, level)
        assert policy.fraction_elapsed("P2", opened, due, at) == level
    assert policy.at_fraction("P2", opened, due, 0.8) == opened + timedelta(hours=3, minutes=12)


def test_p3_fraction_instants_skip_nights(policy: SlaPolicy) -> None:
    opened = berlin(2026, 11, 27, 16, 0)
    due = policy.response_due("P3", opened)
    assert policy.at_fraction("P3", opened, due, 0.5) == berlin(2026, 11, 30, 12, 0)
    assert policy.at_fraction("P3", opened, due, 0.8) == berlin(2026, 11, 30, 14, 24)
    assert policy.at_fraction("P3", opened, due, 1.0) == due
    assert policy.fraction_elapsed("P3", opened, due, berlin(2026, 11, 30, 14, 24)) == 0.8
    # Never negative, grows past 1 when overdue
    assert policy.fraction_elapsed("P3", opened, due, opened - timedelta(days=1)) == 0.0
    assert policy.fraction_elapsed("P3", opened, due, berlin(2026, 12, 1, 16, 0)) == 2.0
    assert policy.remaining("P3", due, berlin(2026, 12, 1, 16, 0)) == -8 * HOUR


def test_p4_reported_on_weekend_before_sprint_has_zero_length(policy: SlaPolicy) -> None:
    opened = berlin(2026, 12, 5, 12, 0)  # Saturday; sprint starts Monday 7 Dec 09:00
    due = policy.response_due("P4", opened)
    assert due == berlin(2026, 12, 7, 9, 0)
    assert policy.fraction_elapsed("P4", opened, due, berlin(2026, 12, 7, 8, 59)) == 0.0
    assert policy.fraction_elapsed("P4", opened, due, due) == 1.0
    assert policy.at_fraction("P4", opened, due, 0.5) == due


@pytest.mark.parametrize("severity", SEVERITIES)
def test_at_fraction_reaches_each_level_exactly(policy: SlaPolicy, severity: str) -> None:
    """What the sweep relies on: at the instant of a level, ``fraction >= level`` holds, a
    microsecond earlier it does not; for odd start times, over DST and the Christmas holidays."""
    levels = (0.5, 0.8, 1.0, 1.7)
    start = berlin(2026, 10, 20, 0, 0)
    for i in range(400):
        opened = start + timedelta(minutes=317 * i, seconds=13, microseconds=7)
        due = policy.response_due(severity, opened)
        for level in levels:
            at = policy.at_fraction(severity, opened, due, level)
            if policy.elapsed(severity, opened, due) <= 0:
                assert at == due
                continue
            assert policy.fraction_elapsed(severity, opened, due, at) >= level, (opened, level)
            before = at - timedelta(seconds=1)
            assert policy.fraction_elapsed(severity, opened, due, before) < level, (opened, level)


def test_christmas_timeline_escalates_each_level_once_in_business_hours(policy: SlaPolicy) -> None:
    """A P3 on Christmas Eve afternoon, swept every 10 minutes until New Year: each level of the
    ladder is crossed once, on Monday 28 Dec, never during the holidays or the night."""
    clock = FrozenClock(berlin(2026, 12, 24, 14, 0))
    opened = clock.now()
    due = policy.response_due("P3", opened)
    assert due == berlin(2026, 12, 28, 14, 0)  # 3 h on Thursday, 25/26 Dec and Sunday skipped, 5 h Monday
    fired: dict[float, datetime] = {}
    while clock.now() < berlin(2027, 1, 1, 0, 0):
        fraction = policy.fraction_elapsed("P3", opened, due, clock.now())
        for level in policy.escalate_at:
            if fraction >= level and level not in fired:
                fired[level] = clock.now()
        clock.advance(minutes=10)
    assert fired == {
        0.5: berlin(2026, 12, 28, 10, 0),
        0.8: berlin(2026, 12, 28, 12, 30),  # 80 % = 6 h 24 min -> Monday 12:24, next tick 12:30
        1.0: berlin(2026, 12, 28, 14, 0),
    }
