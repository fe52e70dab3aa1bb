"""The mailbox inside the service: IDLE wake-up, re-entry, backoff, ``hypercare run``, and the CLI."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need_service
from dovecot import PASSWORD, PASSWORD_ENV, Dovecot, dovecot_binary
from mailkit import make_mail
from sqlalchemy import func, select

from config import Config, DashboardSettings, DatabaseSettings, SmtpInSettings
from intake.receive.imap_connect import ImapUnreachable
from intake.receive.imap_poller import ImapPoller
from intake.receive.imap_watch import ImapWatcher
from tickets.models import ImapState, Ticket

ROOT = Path(__file__).resolve().parents[1]


def build_app(make_app, tmp_path, dovecot, **overrides):  # type: ignore[no-untyped-def]
    cfg = Config(base_dir=tmp_path, database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'hc.db'}"),
                 imap=dovecot.settings(**overrides), smtp_in=SmtpInSettings(enabled=False),
                 dashboard=DashboardSettings(port=0))  # any free port: a running `make run` holds 8025
    app = make_app(config=cfg)
    app.environ = dovecot.environ
    return app


def tickets(app) -> int:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return s.scalar(select(func.count()).select_from(Ticket))


def wait_for(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    """Wait for a real asynchronous effect (a thread reacting to the server), not for SLA time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_idle_wakes_on_new_mail_and_is_re_entered(make_app, tmp_path, dovecot):
    app = build_app(make_app, tmp_path, dovecot, idle=True, poll_seconds=3600)
    poller = ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ)
    watcher = ImapWatcher(poller, idle_refresh=1.0).start()
    try:
        assert wait_for(lambda: watcher.polls >= 1)
        started = time.monotonic()
        dovecot.append([make_mail(message_id="idle1@customer.example")])
        assert wait_for(lambda: tickets(app) == 1)
        assert time.monotonic() - started < 5  # woken by IDLE, not by the hour-long poll interval
        polls = watcher.polls
        assert wait_for(lambda: watcher.polls >= polls + 2, timeout=10)  # IDLE re-entered after each refresh
    finally:
        watcher.stop()
    assert watcher.thread is None and poller.client is None


def test_unreachable_server_backs_off_and_recovers(make_app, tmp_path, dovecot):
    app = build_app(make_app, tmp_path, dovecot, idle=False, poll_seconds=0.2)
    dovecot.stop()
    poller = ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ)
    watcher = ImapWatcher(poller, backoff_base=0.1, backoff_max=0.4).start()
    try:
        assert wait_for(lambda: watcher.failures >= 3)
        assert watcher.backoff_delay() == 0.4  # capped exponential
        with app.store.read() as s:
            assert "refused" in s.scalars(select(ImapState.last_error)).one()
        dovecot.start()
        dovecot.append([make_mail(message_id="back@customer.example")])
        assert wait_for(lambda: tickets(app) == 1)
        assert wait_for(lambda: watcher.failures == 0)
    finally:
        watcher.stop()


def test_server_killed_during_idle_is_noticed_reported_and_recovered(make_app, tmp_path, dovecot, clock):
    """Issue 11: a dead server made idle_check return [] at once, forever; status said ok meanwhile."""
    from dashboard.health import check_health
    from dashboard.status import mailbox_section

    app = build_app(make_app, tmp_path, dovecot, idle=True, poll_seconds=3600)
    poller = ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ)
    watcher = ImapWatcher(poller).start()  # the real backoff: 5 s doubling
    try:
        assert wait_for(lambda: watcher.polls >= 1)
        time.sleep(1.0)  # now waiting in IDLE
        assert check_health(app).ok and mailbox_section(app).ok
        clock.advance(minutes=1)
        dovecot.kill()
        noticed = time.monotonic()
        assert wait_for(lambda: watcher.failures >= 1, timeout=10)
        assert time.monotonic() - noticed < 5  # within seconds, not at the 24-minute IDLE refresh
        health, section = check_health(app), mailbox_section(app)
        assert not health.ok and "connection lost during IDLE" in (health.to_dict()["reason"] or "")
        assert not section.ok and any("FAILING" in line for line in section.lines)
        time.sleep(2.0)
        assert watcher.failures <= 2  # backing off, not spinning
        dovecot.start()
        dovecot.append([make_mail(message_id="after-restart@customer.example")])
        back = time.monotonic()
        assert wait_for(lambda: tickets(app) == 1, timeout=60)
        assert time.monotonic() - back < 60
        assert wait_for(lambda: check_health(app).ok and mailbox_section(app).ok, timeout=10)
    finally:
        watcher.stop()


def test_run_polls_in_its_own_thread_and_stops_cleanly(make_app, tmp_path, dovecot):
    from service import Daemon

    app = build_app(make_app, tmp_path, dovecot, idle=True)
    daemon = Daemon(app)
    daemon.start()
    try:
        assert daemon.imap is not None and daemon.imap.thread.is_alive()
        assert "imap" not in [job.job_func.args[0] for job in daemon.scheduler.jobs]  # not polled twice
        dovecot.append([make_mail(message_id="run1@customer.example")])
        assert wait_for(lambda: tickets(app) == 1)
    finally:
        daemon.stop()
    assert daemon.imap is None


def test_ssl_and_starttls(make_app, tmp_path, monkeypatch):
    need_service(dovecot_binary() is not None, "dovecot not installed")
    server = Dovecot(ssl=True).start()
    try:
        context = ssl.create_default_context(cafile=str(server.ca_file))
        server.append([make_mail(message_id="tls1@customer.example")])
        app = build_app(make_app, tmp_path, server, security="ssl")
        poller = ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ, ssl_context=context)
        assert poller.poll().fetched == 1
        poller.close()
        server.append([make_mail(message_id="tls2@customer.example", sender="other@customer.example")])
        starttls = build_app(make_app, tmp_path, server, security="starttls").config.imap
        poller = ImapPoller(starttls, app.store, app.pipeline, app.clock, app.environ, ssl_context=context)
        assert poller.poll().fetched == 1 and tickets(app) == 2
        poller.close()
        untrusted = ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ)
        with pytest.raises(ImapUnreachable, match="TLS failed"):
            untrusted.poll()  # a self-signed certificate is refused unless trusted
    finally:
        server.cleanup()


# --- the CLI as a user runs it ---------------------------------------------------------------------


def hypercare(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    full = {k: v for k, v in os.environ.items() if k != "HYPERCARE_CONFIG"}
    full.update(env)
    return subprocess.run([sys.executable, str(ROOT / "service.py"), *args], cwd=cwd, capture_output=True,
                          env=full, timeout=120)


def write_config(tmp_path: Path, dovecot: Dovecot) -> None:
    (tmp_path / "hypercare.toml").write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'cli.db'}"
[imap]
host = "127.0.0.1"
port = {dovecot.port}
security = "none"
username = "{dovecot.user}"
password_env = "{PASSWORD_ENV}"
batch_size = 7
""")


def test_poll_once_drains_and_status_reports(tmp_path, dovecot):
    write_config(tmp_path, dovecot)
    dovecot.append(make_mail(message_id=f"cli{i}@customer.example", sender=f"u{i}@customer.example")
                   for i in range(20))
    env = {PASSWORD_ENV: PASSWORD}
    done = hypercare("poll", "--once", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.decode()
    assert "20 fetched" in summary and "20 created" in summary and "moved 20" in summary
    assert "\r" not in summary  # not a terminal: plain summary lines only
    assert dovecot.uids("INBOX") == []
    status = hypercare("status", "--json", cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stdout
    data = json.loads(status.stdout)
    assert data["database"]["reachable"] and data["mailboxes"][0]["waiting"] == 0
    assert data["outbox"]["pending"] == 20 and data["outbox"]["dead"] == 0
    text = hypercare("status", cwd=tmp_path, env=env).stdout.decode()
    assert "last successful poll" in text and "20 pending" in text and "status: ok" in text


def test_poll_once_errors_are_one_line(tmp_path, dovecot):
    write_config(tmp_path, dovecot)
    wrong = hypercare("poll", "--once", cwd=tmp_path, env={PASSWORD_ENV: "nope"})
    assert wrong.returncode == 2
    assert wrong.stderr.decode().strip().splitlines()[-1].startswith("hypercare: IMAP login")
    assert "Traceback" not in wrong.stderr.decode()
    unset = hypercare("poll", "--once", cwd=tmp_path, env={})
    assert unset.returncode == 2 and f"${PASSWORD_ENV}" in unset.stderr.decode()
    status = hypercare("status", cwd=tmp_path, env={})
    assert status.returncode == 1 and "FAILING" in status.stdout.decode()
    dovecot.stop()
    down = hypercare("poll", "--once", cwd=tmp_path, env={PASSWORD_ENV: PASSWORD})
    assert down.returncode == 75 and "connection refused" in down.stderr.decode()
    bare = tmp_path / "no-config"
    bare.mkdir()
    nothing = hypercare("poll", "--once", cwd=bare, env={})
    assert nothing.returncode == 2 and "[imap]" in nothing.stderr.decode()


def test_tick_polls_first_and_a_dead_mailbox_does_not_stop_the_other_jobs(tmp_path, dovecot):
    write_config(tmp_path, dovecot)
    dovecot.append([make_mail(message_id="tick1@customer.example")])
    env = {PASSWORD_ENV: PASSWORD}
    done = hypercare("tick", cwd=tmp_path, env=env)
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0, done.stderr
    assert lines[0].startswith("imap: ") and "1 created" in lines[0]
    assert any(line.startswith("outbox: sent 1") for line in lines)  # the acknowledgement left on the same beat
    dovecot.stop()
    down = hypercare("tick", cwd=tmp_path, env=env)
    assert down.returncode == 0 and "imap: error: IMAP" in down.stdout.decode()
    assert "outbox:" in down.stdout.decode()
