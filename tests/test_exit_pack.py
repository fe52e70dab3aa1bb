"""The exit pack and the honest digests: what a CIO reads in ten seconds, figure by figure."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from digestkit import add_rating, add_ticket

from config import Config, DatabaseSettings, HypercareSettings, StakeholderSettings
from notifier.digests import for_app

BERLIN = ZoneInfo("Europe/Berlin")
GO_LIVE = date(2026, 11, 23)  # a Monday
EXIT_DAY = date(2026, 12, 18)  # the last business day of week 4


def _local(days: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(GO_LIVE + timedelta(days=days), time(hour, minute), tzinfo=BERLIN).astimezone(UTC)


def _config(tmp_path, db_url: str) -> Config:  # type: ignore[no-untyped-def]
    return Config(base_dir=tmp_path, database=DatabaseSettings(url=db_url),
                  hypercare=HypercareSettings(go_live=GO_LIVE, timezone="Europe/Berlin"),
                  stakeholders=StakeholderSettings(daily=("cio@example.com",), weekly=("sponsor@example.com",)))


def _rehearsal(app) -> None:  # type: ignore[no-untyped-def]
    """Four weeks: P1/P2 all resolved, few answered tickets in week 4, a growing pile of P4 wishes."""
    number = 0
    with app.store.session() as s:
        for day in range(0, 21):
            for severity, role in (("P2", "crm_admin"), ("P3", "business_analyst")):
                number += 1
                t = add_ticket(s, number, _local(day, 10), severity=severity, role=role, status="resolved",
                               subject=f"Invoice export {number}", resolved_at=_local(day, 15),
                               first_response_at=_local(day, 10, 30), response_met=day != 3)
                if number % 5 == 0:
                    add_rating(s, t, 4 if number % 2 else 2, _local(day, 16), comment="ok" if number % 2 else "slow")
        for day in range(21, 26):  # week 4: five answered tickets only, one late
            number += 1
            add_ticket(s, number, _local(day, 10), severity="P3", status="resolved", resolved_at=_local(day, 12),
                       first_response_at=_local(day, 11), response_met=day != 22, subject="Login page slow")
        for day in range(5, 25, 2):  # P4 feature requests pile up: scheduled for sprints
            number += 1
            add_ticket(s, number, _local(day, 9), severity="P4", role="business_analyst", status="acknowledged",
                       response_due=_local(28, 9), subject=f"Wish: dashboard colour {number}")
        number += 1
        add_ticket(s, number, _local(24, 9), severity="P3", status="in_progress", subject="Report filter broken",
                   first_response_at=_local(24, 10), response_met=True)


def test_exit_report_separates_blockers_from_scheduled_backlog(make_app, tmp_path, clock, db_url):
    app = make_app(_config(tmp_path, db_url))
    _rehearsal(app)
    builder = for_app(app)
    assert builder.exit_day == EXIT_DAY
    now = _local(25, 8)
    with app.store.read() as s:
        ctx = builder.context(s, "exit_report", now)
    # A growing P4 pile and an SLA measured on a handful of responses do not make it NO-GO.
    assert ctx["verdict"].go and ctx["verdict"].blockers == []
    sla = next(c for c in ctx["verdict"].criteria if c.name == "sla_compliance")
    assert sla.state == "NOT JUDGED" and "n too small (< 20)" in sla.figure
    # Four-week totals by severity and by role.
    assert ctx["created"].by_severity == {"P1": 0, "P2": 21, "P3": 26, "P4": 10}
    assert ctx["created"].by_role == {"business_analyst": 31, "crm_admin": 26}
    assert ctx["resolved"].total == 46
    # SLA per week: weeks 1-4, the late day 3 in week 1, week 4 the small sample.
    weeks = ctx["week_sla"]
    assert [w.week for w in weeks] == [1, 2, 3, 4]
    assert weeks[0].figure.text == "86% (12 of 14), n too small (< 20)"  # both of day 3 late
    assert weeks[3].figure.text == "80% (4 of 5), n too small (< 20)" and not weeks[3].act  # day 25: after now
    # Burn-down from go-live: backlog (P1-P3) and scheduled P4 apart.
    burn = ctx["burn"]
    assert burn[0].day == GO_LIVE and burn[-1].day == GO_LIVE + timedelta(days=25)
    assert (burn[-1].backlog, burn[-1].scheduled) == (1, 10)
    from notifier.digests import queries as q

    instants = [_local(day, 23, 59) for day in range(0, 25)]
    with app.store.read() as s:  # the one-scan series agrees with the CASE-sum question per instant
        for severities in (("P1", "P2", "P3"), ("P4",)):
            assert q.backlog_series(s, instants, severities) == q.backlog_at(s, *instants, severities=severities)
    # Satisfaction over the period, hand-over list split.
    assert ctx["satisfaction"].count == 8
    assert [t.key for t in ctx["handover_blocking"]] == []
    assert len(ctx["handover_scheduled"]) == 10 and len(ctx["handover_backlog"]) == 1
    assert ctx["handover_scheduled"][0].sla == "scheduled for the sprint starting Mon 21 Dec"
    text = builder.render("exit_report", now).text
    assert "Recommendation: GO. No blocker fails" in text
    assert "Decision: not recorded yet" in text
    assert "Scheduled for sprints (10):" in text and "Week 4 (14 Dec - 20 Dec): 80% (4 of 5)" in text
    assert "21 opened" in text and "Four weeks in figures: 57 opened, 46 resolved, 11 open now" in text


def test_every_digest_starts_with_the_verdict_and_colours_only_what_needs_action(make_app, tmp_path, clock):
    app = make_app(_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"))
    with app.store.session() as s:
        add_ticket(s, 1, _local(8, 9), severity="P3", status="resolved", resolved_at=_local(8, 12),
                   first_response_at=_local(8, 10), response_met=True, rules=("fallback-severity", "topic-admin"))
    builder = for_app(app)
    now = _local(14, 8)
    for key in ("status_daily", "weekly_summary", "exit_report"):
        rendered = builder.render(key, now)
        first = rendered.text.splitlines()[0]
        assert first.startswith(("ON TRACK: ", "HYPERCARE EXIT REPORT")), (key, first)
        if key == "exit_report":
            assert rendered.text.splitlines()[1].startswith("ON TRACK: ")
        assert 'id="verdict"' in (rendered.html or "")
        assert "#b91c1c" not in (rendered.html or ""), key  # nothing to act on: no red anywhere
        assert "fallback-severity" not in rendered.text and "topic-admin" not in rendered.text
    daily = builder.render("status_daily", now).text
    assert "First-response SLA, last 7 days: 100% (1 of 1), n too small (< 20)" in daily


def test_off_track_from_week_2_names_the_reason(make_app, tmp_path, clock):
    app = make_app(_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"))
    builder = for_app(app)
    day_1 = builder.render("status_daily", _local(1, 8))
    assert day_1.text.startswith("ON TRACK: no open P1/P2; first-response SLA no responses due; no open backlog")
    with app.store.session() as s:
        add_ticket(s, 1, _local(9, 9), severity="P1", status="new", response_due=_local(9, 10))
    late = builder.render("status_daily", _local(9, 12))
    assert late.text.splitlines()[0].startswith("OFF TRACK: 1 open P1/P2 past the response time")
    assert "off track" in late.subject
    assert "color:#b91c1c" in (late.html or "")


@pytest.mark.parametrize("day", [0, 3, 6])
def test_week_1_is_never_off_track(make_app, tmp_path, clock, day):
    app = make_app(_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"))
    with app.store.session() as s:
        add_ticket(s, 1, _local(0, 9), severity="P1", status="new", response_due=_local(0, 10))
    text = for_app(app).render("status_daily", _local(day, 20)).text
    assert text.startswith("AT RISK: 1 open P1/P2 past the response time")
