"""``hypercare status``: one place that says whether the desk is healthy and what it will send next."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime

from config import Config, HypercareSettings, StakeholderSettings
from dashboard.status import cmd_status


def test_status_lists_next_scheduled_sends_in_local_time(make_app, tmp_path, clock):
    clock.set(datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # Friday of week 1
    app = make_app(Config(base_dir=tmp_path,
                          hypercare=HypercareSettings(go_live=date(2026, 11, 23), timezone="Europe/Berlin"),
                          stakeholders=StakeholderSettings(daily=("cio@example.com",), weekly=("sp@example.com",))))
    assert cmd_status(app, argparse.Namespace(json=True)) == 0
    data = json.loads(app.out.getvalue())
    assert data["ok"] is True
    assert {row["job"]: row["at"] for row in data["schedule"]} == {
        "status_daily": "2026-11-28T07:00:00+00:00",  # 08:00 Berlin, day 5 of week 1: daily
        "weekly_summary": "2026-11-30T07:00:00+00:00",  # next Monday
        "exit_report": "2026-12-18T07:00:00+00:00",  # the last business day of week 4 (day 27: Sunday)
    }


def test_status_text_says_when_no_stakeholders_are_configured(make_app):
    app = make_app()
    cmd_status(app, argparse.Namespace(json=False))
    text = app.out.getvalue()
    assert "next scheduled sends:" in text and "no [stakeholders] configured" in text


def _count_database_looks(monkeypatch) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Count the probes (own connection, up to 2 s each) and the store pings that ``status`` makes."""
    import tickets.health
    from tickets.store import Store

    looks = {"probe": 0, "ping": 0}
    real_probe, real_ping = tickets.health.probe_database, Store.ping

    def probe(*args, **kwargs):  # type: ignore[no-untyped-def]
        looks["probe"] += 1
        return real_probe(*args, **kwargs)

    def ping(self):  # type: ignore[no-untyped-def]
        looks["ping"] += 1
        return real_ping(self)

    monkeypatch.setattr(tickets.health, "probe_database", probe)
    monkeypatch.setattr(Store, "ping", ping)
    return looks


def test_status_looks_at_the_database_once_for_all_sections(make_app, monkeypatch):
    """Each section used to probe again: six looks per ``status``, up to 2 s each on a busy database."""
    app = make_app()
    app.store  # noqa: B018 - the database exists before we count
    looks = _count_database_looks(monkeypatch)
    assert cmd_status(app, argparse.Namespace(json=True)) == 0
    data = json.loads(app.out.getvalue())
    assert data["database"]["state"] == "ok" and data["outbox"]["pending"] == 0 and data["replies"]["refused"] == 0
    assert looks == {"probe": 1, "ping": 1}
    cmd_status(app, argparse.Namespace(json=False))  # a second status looks afresh, once
    assert looks == {"probe": 2, "ping": 2}


def test_status_with_the_database_down_looks_once_and_every_section_says_unknown(make_app, tmp_path, monkeypatch):
    app = make_app(db="postgresql+psycopg://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    looks = _count_database_looks(monkeypatch)
    assert cmd_status(app, argparse.Namespace(json=False)) == 1
    text = app.out.getvalue()
    assert "database: UNREACHABLE" in text
    for name in ("mailboxes", "relay", "outbox", "bouncing team/stakeholders", "replies"):
        assert f"{name}: unknown (database unreachable)" in text, name
    assert looks == {"probe": 1, "ping": 0}
