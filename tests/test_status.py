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
