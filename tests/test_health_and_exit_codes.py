"""Health tells the truth, and commands exit as documented (issue 11).

``status`` once exited 0 after three hours of unreachable relay, reported a merely locked
SQLite file as UNREACHABLE after 40 s, and every command with PostgreSQL down exited 2
("check [database] url") with a multi-line message where the docs promise 75.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from mailkit import Relay
from sqlalchemy import select

from config import Config, DatabaseSettings, NotifierSettings, SmtpOutSettings
from dashboard.health import check_health
from dashboard.status import collect, database_section
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue
from tickets.models import OutboxItem

ROOT = Path(__file__).resolve().parents[1]
DOWN = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # nothing listens on port 1


def hypercare(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, str(ROOT / "service.py"), *args], cwd=cwd, capture_output=True,
                          timeout=120)


@pytest.mark.parametrize("command", [("poll", "--once"), ("outbox", "flush"), ("tick",), ("sla", "sweep"),
                                     ("ingest", "-"), ("quarantine", "list"), ("status",)])
def test_database_unreachable_is_exit_75_with_one_line(tmp_path, command):
    imap = '[imap]\nhost = "127.0.0.1"\nport = 1\nusername = "support"\npassword_env = "NOPE"\n'
    (tmp_path / "hypercare.toml").write_text(f'[database]\nurl = "{DOWN}"\n{imap}')
    started = time.monotonic()
    result = hypercare(*command, cwd=tmp_path)
    stderr = result.stderr.decode().strip()
    if command == ("status",):  # status reports instead of failing: exit 1, the database section says why
        assert result.returncode == 1 and "database: UNREACHABLE" in result.stdout.decode()
        assert time.monotonic() - started < 15
        return
    assert result.returncode == 75, (result.returncode, stderr)
    assert len(stderr.splitlines()) == 1 and "try again" in stderr and "Traceback" not in stderr, stderr


def test_a_bad_database_url_is_still_exit_2(tmp_path):
    (tmp_path / "hypercare.toml").write_text('[database]\nurl = "nosuchdriver://x/y"\n')
    result = hypercare("outbox", "flush", cwd=tmp_path)
    assert result.returncode == 2 and "check [database] url" in result.stderr.decode()


def test_status_says_busy_not_unreachable_within_two_seconds_while_sqlite_is_locked(make_app, tmp_path):
    app = make_app()
    db = tmp_path / "var" / "hypercare.db"
    app.store  # noqa: B018 - create the database
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        [database] = collect(app, sections=(database_section,))
        health = check_health(app)
        elapsed = time.monotonic() - started
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert not database.ok and database.data["state"] == "busy" and "BUSY" in database.lines[0]
    assert health.checks["database"].startswith("busy")
    assert elapsed < 5  # two probes of at most 2 s each
    [database] = collect(app, sections=(database_section,))
    assert database.ok and database.data["state"] == "ok"


def _queue(app, n: int) -> None:  # type: ignore[no-untyped-def]
    with app.store.session() as s:
        for i in range(n):
            mail = OutgoingMail(kind="ack", to=[f"user{i}@customer.example"], subject=f"mail {i}", text="hi")
            enqueue(s, mail, key=f"t:{i}", support=app.config.support, now=app.clock.now())


def test_relay_unreachable_for_long_is_reported_with_last_success_and_error(make_app, tmp_path, clock):
    relay = Relay().start()
    cfg = Config(base_dir=tmp_path, smtp_out=SmtpOutSettings(host="127.0.0.1", port=relay.port, timeout=2),
                 notifier=NotifierSettings(retry_base_seconds=60))
    app = make_app(cfg)
    _queue(app, 1)
    app.outbox.flush(app.transport())  # the relay works: last success recorded
    sections = {s.name: s for s in collect(app)}
    assert sections["relay"].ok and f"relay 127.0.0.1:{relay.port}: ok" in sections["relay"].lines[0]
    relay.stop()
    _queue(app, 3)
    app.outbox.flush(app.transport())
    clock.advance(minutes=2)
    assert {s.name: s for s in collect(app)}["relay"].ok  # a short outage is the backoff's business
    for _ in range(180):  # three hours, a flush a minute
        clock.advance(minutes=1)
        app.outbox.flush(app.transport())
    sections = {s.name: s for s in collect(app)}
    relay_section, outbox_section = sections["relay"], sections["outbox"]
    assert not relay_section.ok and "FAILING (unreachable for 182 min" in relay_section.lines[0]
    assert "last accepted mail 2026-11-23T09:00:00+00:00" in relay_section.lines[0]
    assert "unreachable" in relay_section.lines[1]
    assert not outbox_section.ok and any("oldest unsent mail waiting 182 min" in line for line in outbox_section.lines)
    health = check_health(app).to_dict()
    assert health["status"] == "unavailable" and "relay 127.0.0.1" in health["reason"]


def test_stuck_claims_and_dead_items_need_attention_and_exit_1(tmp_path):
    (tmp_path / "hypercare.toml").write_text('[database]\nurl = "sqlite:///var/h.db"\n')
    assert hypercare("db", "upgrade", cwd=tmp_path).returncode == 0
    from tickets.clock import SystemClock
    from tickets.store import Store

    store = Store(f"sqlite:///{tmp_path / 'var' / 'h.db'}")
    now = SystemClock().now()
    with store.session() as s:
        for i in range(3):
            mail = OutgoingMail(kind="ack", to=[f"user{i}@customer.example"], subject=f"mail {i}", text="hi")
            enqueue(s, mail, key=f"t:{i}", support=Config().support, now=now)
        items = list(s.scalars(select(OutboxItem).order_by(OutboxItem.id)))
        items[0].status, items[0].claimed_by = "sending", "host:123:abc"
        items[0].claimed_until = now - timedelta(minutes=10)  # its worker died long ago
        items[1].status, items[1].last_error = "dead", "550 5.1.1 no such user"
    store.dispose()
    result = hypercare("status", "--json", cwd=tmp_path)
    assert result.returncode == 1
    outbox = json.loads(result.stdout)["outbox"]
    assert outbox["stuck_claims"] == 1 and outbox["dead"] == 1
    assert any("claim(s) expired unsent" in p for p in outbox["problems"])
    listing = hypercare("outbox", "list", cwd=tmp_path).stdout.decode()
    assert "claimed by host:123:abc until" in listing
    rows = json.loads(hypercare("outbox", "list", "--json", cwd=tmp_path).stdout)
    assert rows[0]["claimed_by"] == "host:123:abc" and rows[0]["claimed_until"]


def test_healthz_is_ok_for_a_working_desk_with_a_relay(make_app, tmp_path, relay):
    cfg = Config(base_dir=tmp_path, smtp_out=SmtpOutSettings(host="127.0.0.1", port=relay.port),
                 database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}"))
    app = make_app(cfg)
    _queue(app, 2)
    assert app.outbox.flush(app.transport()).sent == 2
    health = check_health(app)
    assert health.ok, health.reasons
    assert health.checks[f"relay 127.0.0.1:{relay.port}"] == "ok" and health.checks["outbox"] == "ok"
