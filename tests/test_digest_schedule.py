"""Living through hypercare on the FrozenClock: the cadence exact, nothing twice, restarts and downtime."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from time import sleep
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from config import Config, DatabaseSettings, HypercareSettings, StakeholderSettings
from notifier.digest_cli import periodic_job
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue
from notifier.scheduler import DigestScheduler
from tickets.models import OutboxItem, ScheduleRun

BERLIN = ZoneInfo("Europe/Berlin")
GO_LIVE = date(2026, 11, 23)  # a Monday


def _config(tmp_path, db_url: str) -> Config:  # type: ignore[no-untyped-def]
    return Config(
        base_dir=tmp_path, database=DatabaseSettings(url=db_url),
        hypercare=HypercareSettings(go_live=GO_LIVE, timezone="Europe/Berlin", digest_time=time(8, 0),
                                    weekly_summary_day=0),
        stakeholders=StakeholderSettings(daily=("cio@example.com", "pm@example.com"),
                                         weekly=("sponsor@example.com",)),
    )


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=BERLIN).astimezone(UTC)


def _sent(app) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        rows = s.execute(select(OutboxItem.kind, OutboxItem.idempotency_key).order_by(OutboxItem.id)).all()
    out: dict[str, list[str]] = {}
    for kind, key in rows:
        out.setdefault(kind, []).append(key.rsplit(":", 1)[1])
    return out


def _tick(app) -> str:  # type: ignore[no-untyped-def]
    """One beat of the digest job of *app* (built once per app, as the daemon does at start)."""
    if not hasattr(app, "_test_digest_job"):
        [(_, app._test_digest_job)] = periodic_job(app)
    return app._test_digest_job()


def test_four_weeks_of_daily_ticks_with_restarts(make_app, tmp_path, clock, db_url):
    config = _config(tmp_path, db_url)
    app = make_app(config)
    start = GO_LIVE - timedelta(days=3)
    for n in range(45):
        day = start + timedelta(days=n)
        if n % 4 == 0:
            app = make_app(config)  # a restart: a new process, same database
        for hour, minute in ((0, 5), (7, 59), (8, 0), (8, 0), (8, 1), (13, 30), (23, 59)):
            clock.set(_local(day, hour, minute))
            _tick(app)
        if n % 5 == 0:  # and a second instance ticking at the digest minute
            clock.set(_local(day, 8, 0))
            _tick(make_app(config))
    sent = _sent(app)
    status_days = [GO_LIVE + timedelta(days=d) for d in (0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 21)]
    assert sent["status_daily"] == [d.isoformat() for d in status_days]
    mondays = [GO_LIVE + timedelta(weeks=w) for w in range(1, 6)]  # not on go-live day: no week of data yet
    assert sent["weekly_summary"] == [d.isoformat() for d in mondays if d < start + timedelta(days=45)]
    assert sent["exit_report"] == ["2026-12-18"]  # the last business day of week 4 (day 27 is a Sunday)
    with app.store.read() as s:
        items = [(i.kind, i.recipients, i.mime) for i in s.scalars(select(OutboxItem))]
        runs = s.execute(select(ScheduleRun.job, ScheduleRun.period_key, ScheduleRun.ran_at)).all()
    assert len(runs) == len(items)
    # Each was queued at exactly 08:00 local on its day, to the right people, as an automatic mail.
    for job, key, ran_at in runs:
        assert ran_at == _local(date.fromisoformat(key), 8, 0), (job, key)
    for kind, recipients, mime in items:
        expected = {"status_daily": ["cio@example.com", "pm@example.com"], "weekly_summary": ["sponsor@example.com"],
                    "exit_report": ["cio@example.com", "pm@example.com", "sponsor@example.com"]}[kind]
        assert recipients == expected
        assert b"Auto-Submitted: auto-generated" in mime


def test_after_downtime_only_the_latest_missed_digest_is_sent_once(make_app, tmp_path, clock, db_url):
    config = _config(tmp_path, db_url)
    app = make_app(config)
    clock.set(_local(GO_LIVE + timedelta(days=7), 8, 0))
    _tick(app)  # day 7 sent; then down until day 12 07:00 (days 9 and 11 missed)
    clock.set(_local(GO_LIVE + timedelta(days=12), 7, 0))
    back = make_app(config)
    assert "status_daily 2026-12-04" in _tick(back)  # day 11, late
    assert _tick(back) == "nothing due"
    clock.set(_local(GO_LIVE + timedelta(days=12), 8, 0))
    assert _tick(back) == "nothing due"  # day 12 is not a status day
    # Down for more than a week past the last status (day 21) : the stale one is not sent at all.
    clock.set(_local(GO_LIVE + timedelta(days=29), 9, 0))
    assert "status_daily" not in _tick(make_app(config))
    assert _sent(back)["status_daily"] == ["2026-11-30", "2026-12-04"]
    # Weekly summaries missed on days 14, 21, 28: only the one of day 28 goes out.
    assert _sent(back)["weekly_summary"] == ["2026-11-30", "2026-12-21"]


def test_late_start_sends_the_day_s_digest_once(make_app, tmp_path, clock, db_url):
    config = _config(tmp_path, db_url)
    clock.set(_local(GO_LIVE, 11, 45))  # installed on go-live day, after digest time
    app = make_app(config)
    first = _tick(app)
    assert "status_daily 2026-11-23" in first and "(225 min late)" in first
    assert "weekly_summary" not in first  # go-live morning: no week of data to summarise
    assert _tick(app) == "nothing due"


def test_two_instances_racing_send_once(make_app, tmp_path, clock, db_url):
    config = _config(tmp_path, db_url)
    clock.set(_local(GO_LIVE + timedelta(days=7), 8, 0))  # a status day and the first weekly summary
    apps = [make_app(config) for _ in range(4)]
    for a in apps:
        a.store  # noqa: B018 - schema ready before the race
    jobs = [periodic_job(a)[0][1] for a in apps]
    barrier = threading.Barrier(len(jobs))
    results: list[str] = []

    def race(job) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        results.append(job())

    threads = [threading.Thread(target=race, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sent = _sent(apps[0])
    assert sent["status_daily"] == ["2026-11-30"] and sent["weekly_summary"] == ["2026-11-30"]


def test_no_recipients_is_recorded_not_retried_every_beat(make_app, tmp_path, clock):
    import dataclasses

    config = dataclasses.replace(_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"),
                                 stakeholders=StakeholderSettings())
    clock.set(_local(GO_LIVE, 8, 0))
    app = make_app(config)
    assert "skipped, no recipients configured" in _tick(app)
    assert "skipped, no recipients configured" in _tick(app)
    assert _sent(app) == {}
    # Stakeholders configured later that day: the digest still goes out, once.
    later = make_app(_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"))
    clock.set(_local(GO_LIVE, 10, 0))
    assert "queued" in _tick(later) and _tick(later) == "nothing due"


def test_next_sends_for_status(make_app, tmp_path, clock):
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    clock.set(_local(GO_LIVE + timedelta(days=7), 9, 0))
    app = make_app(config)
    from notifier.digests import for_app

    scheduler = DigestScheduler(config, app.store, for_app(app), GO_LIVE)
    upcoming = dict(scheduler.next_sends(clock.now()))
    assert upcoming["status_daily"] == _local(GO_LIVE + timedelta(days=9), 8, 0)
    assert upcoming["weekly_summary"] == _local(GO_LIVE + timedelta(days=14), 8, 0)
    assert upcoming["exit_report"] == _local(date(2026, 12, 18), 8, 0)  # Friday of week 4


def test_exit_date_is_configurable(make_app, tmp_path, clock):
    import dataclasses

    base = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    config = dataclasses.replace(base, hypercare=dataclasses.replace(base.hypercare, exit_date=date(2026, 12, 22)))
    clock.set(_local(date(2026, 12, 18), 9, 0))
    app = make_app(config)
    assert "exit_report" not in _tick(app)
    clock.set(_local(date(2026, 12, 22), 8, 0))
    assert "exit_report 2026-12-22: queued" in _tick(app)


@pytest.mark.parametrize("day_offset", [-1])
def test_nothing_before_go_live(make_app, tmp_path, clock, day_offset):
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    clock.set(_local(GO_LIVE + timedelta(days=day_offset), 23, 0))
    assert _tick(make_app(config)) == "nothing due"


def _go_to_a_status_day(clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(_local(GO_LIVE + timedelta(days=1), 8, 0))  # a status day, no weekly summary


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_another_instance_taking_the_period_key_mid_transaction_is_already_sent(make_app, tmp_path, clock,
                                                                               db_url):
    """The uniqueness error is our own period key, inserted by an instance whose commit we waited for."""
    from sqlalchemy import create_engine, text

    _go_to_a_status_day(clock)
    app = make_app(_config(tmp_path, db_url))
    job = periodic_job(app)[0][1]
    other = create_engine(db_url)
    result: list[str] = []
    with other.connect() as conn:
        conn.execute(text("INSERT INTO schedule_runs (job, period_key, ran_at, detail) "
                          "VALUES ('status_daily', '2026-11-24', now(), 'the other instance')"))
        # Not committed: our check sees nothing, our insert waits on the unique index for this commit.
        racer = threading.Thread(target=lambda: result.append(job()))
        racer.start()
        waiting = ("SELECT count(*) FROM pg_stat_activity"
                   " WHERE wait_event_type = 'Lock' AND datname = current_database()")
        for _ in range(200):
            if conn.execute(text(waiting)).scalar():
                break
            sleep(0.05)
        else:
            pytest.fail("our insert never waited for the other instance's period key")
        conn.commit()
        racer.join(timeout=30)
    other.dispose()
    assert result == ["status_daily 2026-11-24: already sent by another instance"]
    assert _sent(app) == {}  # our outbox row went with our rolled-back transaction


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_uniqueness_error_that_is_not_the_period_key_is_retried_not_taken_for_sent(make_app, tmp_path, clock,
                                                                                      db_url, caplog):
    """A stale id sequence (a restored dump): ``outbox_pkey`` collides, the digest must still go out.

    Before, every IntegrityError meant "already sent by another instance": the digest was lost.
    """
    from sqlalchemy import text

    _go_to_a_status_day(clock)
    app = make_app(_config(tmp_path, db_url))
    with app.store.session() as s:
        for i in range(1, 6):
            enqueue(s, OutgoingMail(kind="ack", to=[f"u{i}@customer.example"], subject="x", text="x"),
                    key=f"older:{i}", support=app.config.support, now=clock.now())
        s.execute(text("ALTER SEQUENCE outbox_id_seq RESTART WITH 1"))  # ids 1-5 are taken
    job = periodic_job(app)[0][1]
    # Three attempts collide (ids 1, 2, 3): a real error after a bounded retry, logged, raised, nothing recorded.
    with pytest.raises(IntegrityError):
        job()
    assert "not queued after 3 attempts" in caplog.text and "outbox_pkey" in caplog.text
    assert _sent(app) == {"ack": ["1", "2", "3", "4", "5"]}
    with app.store.read() as s:
        assert s.scalar(select(ScheduleRun.id)) is None  # not taken for sent: the next beat tries again
    # The next beat: ids 4 and 5 collide, 6 is free; the retry queues the digest.
    assert "status_daily 2026-11-24: queued outbox item 6" in job()
    assert _sent(app)["status_daily"] == ["2026-11-24"]
    assert job() == "nothing due"
