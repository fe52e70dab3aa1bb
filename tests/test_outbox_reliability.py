"""At most one duplicate per crash, none in normal operation; relay outages are not the mail's fault.

Issue 11's campaign: sends were recorded 20 at a time (a crash resent up to 19), a second instance
re-claimed rows whose claim expired while a slow relay was still working through the batch, and
attempts made while the relay was unreachable counted towards ``max_attempts``.  Everything here
runs against real aiosmtpd relays or real sockets that misbehave.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from mailkit import CapturingHandler, Relay, free_port
from sqlalchemy import create_engine, select, text

from config import Config, DatabaseSettings, NotifierSettings, SmtpOutSettings
from core.errors import TryLater
from notifier.mime import OutgoingMail
from notifier.outbox import FlushReport, Outbox, enqueue
from notifier.transports import SmtpTransport
from tickets.clock import SystemClock
from tickets.models import OutboxItem, RelayState

ROOT = Path(__file__).resolve().parents[1]


def _app(make_app, tmp_path, port: int, *, db: str | None = None, timeout: float = 5, **notifier):  # type: ignore[no-untyped-def]
    cfg = Config(base_dir=tmp_path, smtp_out=SmtpOutSettings(host="127.0.0.1", port=port, timeout=timeout),
                 notifier=NotifierSettings(**notifier))
    if db is not None:
        cfg = Config(base_dir=tmp_path, smtp_out=cfg.smtp_out, notifier=cfg.notifier, database=DatabaseSettings(url=db))
    app = make_app(cfg)
    app.outbox.rng = random.Random(7)
    return app


def _queue(app, n: int) -> None:  # type: ignore[no-untyped-def]
    with app.store.session() as s:
        for i in range(n):
            mail = OutgoingMail(kind="ack", to=[f"user{i}@customer.example"], subject=f"mail {i}", text="hi")
            enqueue(s, mail, key=f"t:{i}", support=app.config.support, now=app.clock.now())


def _items(app) -> list[OutboxItem]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return list(s.scalars(select(OutboxItem).order_by(OutboxItem.id)))


def _copies(relay) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter(d.message["Message-ID"].strip("<>") for d in relay.deliveries)


class Crash(BaseException):
    """Stands for SIGKILL inside the worker: nothing after it runs, no except clause catches it."""


class CrashAfter(SmtpTransport):
    """Dies right after the relay accepted the n-th message (the worst moment for duplicates)."""

    def __init__(self, settings, n: int) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings, {})
        self.left = n

    def send(self, sender, recipients, data, before_data=None):  # type: ignore[no-untyped-def]
        refused = super().send(sender, recipients, data, before_data)
        self.left -= 1
        if self.left == 0:
            raise Crash
        return refused


def test_each_send_is_recorded_as_soon_as_the_relay_accepts_it(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port)
    _queue(app, 10)
    with pytest.raises(Crash):
        app.outbox.flush(CrashAfter(app.config.smtp_out, 4))
    statuses = Counter(i.status for i in _items(app))
    assert statuses == {"sent": 3, "sending": 7}  # the 4th was accepted, the crash came before its record
    clock.advance(minutes=10)  # the dead worker's claim expires
    assert app.outbox.flush(app.transport()).sent == 7
    copies = _copies(relay)
    assert len(copies) == 10 and sum(copies.values()) == 11  # exactly one extra copy for one crash


def test_sends_a_killed_worker_marked_become_sent_at_the_next_flush(make_app, tmp_path, relay, clock):
    """SIGKILL between a mark and its batch's fold: the row says sending, sent_at set; nothing else is due."""
    app = _app(make_app, tmp_path, relay.port)
    _queue(app, 1)
    with app.store.session() as s:
        item = s.scalars(select(OutboxItem)).one()
        item.status, item.sent_at, item.claimed_by = "sending", clock.now(), "dead-worker"
        item.claimed_until = clock.now() + timedelta(minutes=5)
    assert app.outbox.flush(app.transport()).sent == 0
    [item] = _items(app)
    assert (item.status, item.attempts, item.claimed_by) == ("sent", 1, None) and not relay.deliveries


def test_two_instances_with_a_slow_relay_never_send_twice(make_app, tmp_path, relay, db_url):
    """Claims shorter than a batch takes: renewed while the worker is busy, so the other never takes them."""
    app = _app(make_app, tmp_path, relay.port, db=db_url)
    _queue(app, 16)
    relay.handler.faults.extend(["slow:0.25"] * 16)
    settings = NotifierSettings(batch_size=8)
    workers = [Outbox(app.store, SystemClock(), settings, claim_seconds=0.9, worker=name) for name in "AB"]
    reports = []

    def run(outbox: Outbox) -> None:
        for _ in range(6):
            reports.append(outbox.flush(SmtpTransport(app.config.smtp_out, {})))
            time.sleep(0.3)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    copies = _copies(relay)
    assert len(copies) == 16 and set(copies.values()) == {1}, copies
    assert all(i.status == "sent" and i.claimed_by is None for i in _items(app))


class Greeter:
    """A socket server for relay outages smtplib cannot tell from a real one: 421 at connect, or silence."""

    def __init__(self, greeting: bytes | None) -> None:
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.greeting is not None:
                conn.sendall(self.greeting)
                conn.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(), so the port is free again
        except OSError:
            pass
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.parametrize("outage", ["refused", "421 at connect", "no greeting"])
def test_relay_outage_backs_off_without_counting_attempts(make_app, tmp_path, clock, outage):
    server = None
    if outage == "refused":
        port = free_port()
    else:
        server = Greeter(b"421 4.3.2 service not available\r\n" if outage.startswith("421") else None)
        port = server.port
    app = _app(make_app, tmp_path, port, timeout=0.5, max_attempts=2, retry_base_seconds=60)
    _queue(app, 1)
    opens = []

    class Counting(SmtpTransport):
        def open(self) -> None:
            opens.append(clock.now())
            super().open()

    try:
        for _ in range(30):  # half an hour of flushes, one a minute
            app.outbox.flush(Counting(app.config.smtp_out, {}))
            clock.advance(minutes=1)
    finally:
        if server is not None:
            server.close()
    items = _items(app)
    assert [(i.status, i.attempts) for i in items] == [("pending", 0)]
    assert all("relay unavailable (not counted as an attempt)" in (i.last_error or "") for i in items)
    # Backoff grows with the outage (base 60 s at first, about as long as the outage so far later on):
    # a handful of knocks in 30 minutes, the gaps growing.
    assert 3 <= len(opens) <= 8, opens
    gaps = [b - a for a, b in zip(opens, opens[1:], strict=False)]
    assert gaps[-1] >= timedelta(minutes=4) and gaps[-1] > gaps[0]
    with app.store.read() as s:
        [state] = s.scalars(select(RelayState)).all()
        assert state.relay == f"127.0.0.1:{port}" and state.failing_since is not None and state.last_success_at is None
    # ... answering 451 once (greylisting): one attempt counted, not dead.
    # The relay comes back (for the fake servers on a new port: theirs may linger in TIME_WAIT).
    relay = Relay(port=port if outage == "refused" else None).start()
    app = _app(make_app, tmp_path, relay.port, timeout=5, max_attempts=2, retry_base_seconds=60)
    try:
        relay.handler.faults.extend(["451 4.7.1 greylisted"])
        clock.advance(hours=2)
        app.outbox.flush(app.transport())
        assert [(i.status, i.attempts) for i in _items(app)] == [("pending", 1)]
        clock.advance(hours=2)
        assert app.outbox.flush(app.transport()).sent == 1
    finally:
        relay.stop()
    with app.store.read() as s:
        state = s.get(RelayState, f"127.0.0.1:{relay.port}")
        assert state.failing_since is None and state.last_success_at == clock.now()


def test_a_stop_request_ends_the_flush_between_messages_and_puts_rows_back(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port)
    _queue(app, 10)

    class StopAfterTwo(SmtpTransport):
        sent = 0

        def send(self, sender, recipients, data, before_data=None):  # type: ignore[no-untyped-def]
            refused = super().send(sender, recipients, data, before_data)
            StopAfterTwo.sent += 1
            if StopAfterTwo.sent == 2:
                app.outbox.stopping.set()
            return refused

    report = app.outbox.flush(StopAfterTwo(app.config.smtp_out, {}))
    assert report.stopped and report.sent == 2
    items = _items(app)
    assert Counter(i.status for i in items) == {"sent": 2, "pending": 8}
    assert all(i.attempts == 0 and i.claimed_by is None and i.next_attempt_at <= clock.now()
               for i in items if i.status == "pending")


def _run_config(tmp_path, relay, db_url: str | None = None) -> dict[str, str]:
    """A desk in *tmp_path* with only the outbox on (no SMTP intake, no dashboard), sending to *relay*;
    the environment that points ``service.py`` at it."""
    database = f"[database]\nurl = \"{db_url}\"\n" if db_url else ""
    (tmp_path / "hypercare.toml").write_text(
        f"{database}[smtp_in]\nenabled = false\n[dashboard]\nenabled = false\n"
        f"[smtp_out]\nhost = \"127.0.0.1\"\nport = {relay.port}\ntimeout = 10\n")
    env = {k: v for k, v in os.environ.items() if k != "HYPERCARE_CONFIG"}
    env["HYPERCARE_CONFIG"] = str(tmp_path / "hypercare.toml")
    return env


def _queue_acks(store, tmp_path, count: int, due_ago: timedelta = timedelta(0)) -> None:
    cfg = Config(base_dir=tmp_path)
    with store.session() as s:
        for i in range(count):
            mail = OutgoingMail(kind="ack", to=[f"user{i}@customer.example"], subject=f"mail {i}", text="hi")
            enqueue(s, mail, key=f"t:{i}", support=cfg.support, now=SystemClock().now() - due_ago)


def _start_run(tmp_path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "service.py"), "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and "hypercare running" in proc.stdout.readline().decode()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def _wait_for_deliveries(relay, count: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(relay.deliveries) < count:
        time.sleep(0.1)
    assert len(relay.deliveries) >= count


def _slow_relay_with_due_acks(tmp_path, relay, count: int, db_url: str | None = None):
    """*count* acknowledgements due, a relay taking 1 s each, and ``run`` started: (its process, the store)."""
    from tickets.store import Store

    relay.handler.faults.extend(["slow:1.0"] * count)
    env = _run_config(tmp_path, relay, db_url)
    store = Store(db_url or f"sqlite:///{tmp_path / 'var' / 'hypercare.db'}", tmp_path)
    store.upgrade()
    _queue_acks(store, tmp_path, count, due_ago=timedelta(seconds=5))
    proc = _start_run(tmp_path, env)
    return proc, store


def _kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _outbox_rows(store) -> list[OutboxItem]:
    """Every outbox row, read after ``run`` ended; the test's store is closed."""
    with store.read() as s:
        items = list(s.scalars(select(OutboxItem)))
    store.dispose()
    return items


def test_sigterm_stops_run_within_10_seconds_with_a_slow_relay(tmp_path, relay):
    """The daemon with 40 acknowledgements due and a relay taking 1 s each: SIGTERM ends it promptly."""
    proc, store = _slow_relay_with_due_acks(tmp_path, relay, 40)
    try:
        _wait_for_deliveries(relay, 2)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - stopped_at < 10
    finally:
        _kill_if_running(proc)
    items = _outbox_rows(store)
    delivered = len(relay.deliveries)
    statuses = Counter(i.status for i in items)
    assert statuses["sending"] == 0 and statuses["sent"] + statuses["pending"] == 40
    assert statuses["sent"] == delivered  # every accepted message recorded, the rest put back
    assert all(i.attempts == 0 for i in items if i.status == "pending")


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_run_flushes_the_outbox_in_a_process_of_its_own(tmp_path, relay, db_url, stop):
    """``run`` sends from a forked child (notifier.beat_process), not from its own process: the claims
    name the child's pid.  SIGTERM to the daemon, or the daemon killed outright: the child ends the flush
    between two messages and puts its unsent claimed rows back, on SQLite and PostgreSQL."""
    proc, store = _slow_relay_with_due_acks(tmp_path, relay, 20, db_url)
    try:
        _wait_for_deliveries(relay, 2)
        with store.read() as s:
            workers = set(s.scalars(select(OutboxItem.claimed_by).where(OutboxItem.status == "sending")))
        assert len(workers) == 1
        sender = int(workers.pop().split(":")[1])  # host:pid:random (Outbox.worker)
        assert sender != proc.pid and _parent_of(sender) == proc.pid
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM if stop == "sigterm" else signal.SIGKILL)
        assert proc.wait(timeout=15) == (0 if stop == "sigterm" else -signal.SIGKILL)
        while time.monotonic() - stopped_at < 10 and not _gone(sender):
            time.sleep(0.1)
        assert _gone(sender) and time.monotonic() - stopped_at < 10  # no orphan sending on for a stopped desk
    finally:
        _kill_if_running(proc)
    items = _outbox_rows(store)
    statuses = Counter(i.status for i in items)
    assert statuses["sending"] == 0 and statuses["sent"] + statuses["pending"] == 20
    assert statuses["sent"] == len(relay.deliveries) < 20  # every accepted message recorded, the rest put back
    assert all(i.attempts == 0 and i.claimed_by is None for i in items if i.status == "pending")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_run_takes_the_beat_over_when_its_process_dies(tmp_path, relay):
    """The beat process killed: ``run`` says so and sends the outbox from its own process from then on
    (it cannot fork again with its threads running), so acknowledgements still leave."""
    proc = _start_run(tmp_path, _run_config(tmp_path, relay))
    try:
        children = [int(pid) for task in Path(f"/proc/{proc.pid}/task").iterdir()
                    for pid in (task / "children").read_text().split()]
        assert len(children) == 1  # the beat (no SMTP intake here: no parse worker)
        os.kill(children[0], signal.SIGKILL)
        from tickets.store import Store

        store = Store(f"sqlite:///{tmp_path / 'var' / 'hypercare.db'}")
        _queue_acks(store, tmp_path, 3)
        _wait_for_deliveries(relay, 3, seconds=15)
        assert len(relay.deliveries) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    store.dispose()
    assert "beat process ended" in proc.stderr.read().decode()


class CountingRcpt(CapturingHandler):
    """Also counts RCPT TO: what of the next mail the relay saw before its DATA."""

    rcpts: int = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        self.rcpts += 1
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_next_mail_s_data_waits_for_the_previous_mail_s_record(make_app, tmp_path, db_url):
    """The record of mail k is written while mail k+1's MAIL FROM and RCPT TO are on the wire (the speed);
    mail k+1's DATA waits for it (the guarantee: never two accepted mails unrecorded, one copy per crash)."""
    relay = Relay(handler=CountingRcpt()).start()
    locker = create_engine(db_url, isolation_level="AUTOCOMMIT").connect()
    try:
        app = _app(make_app, tmp_path, relay.port, db=db_url)
        _queue(app, 3)
        relay.handler.faults.append("slow:1.0")  # time to lock the first row once it is claimed
        reports: list[FlushReport] = []
        flushing = threading.Thread(target=lambda: reports.append(app.outbox.flush(app.transport())))
        flushing.start()
        assert _wait(lambda: locker.execute(text("SELECT count(*) FROM outbox WHERE status = 'sending'")).scalar() == 3)
        locker.execute(text("BEGIN"))
        locker.execute(text("SELECT id FROM outbox ORDER BY id LIMIT 1 FOR UPDATE"))  # the first record must wait
        # (a prepared statement's execution leaves the previous query's text in pg_stat_activity)
        waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                   " AND datname = current_database() AND pid <> pg_backend_pid()")
        assert _wait(lambda: locker.execute(text(waiting)).scalar() == 1, timeout=10)
        assert _wait(lambda: relay.handler.rcpts == 2)  # the second mail's envelope went out meanwhile ...
        time.sleep(0.5)
        assert len(relay.deliveries) == 1  # ... but not its DATA: the relay could not accept it yet
        locker.execute(text("COMMIT"))
        flushing.join(30)
        assert reports[0].sent == 3 and len(relay.deliveries) == 3
        assert [i.status for i in _items(app)] == ["sent"] * 3
    finally:
        locker.close()
        relay.stop()



@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_record_that_fails_stops_the_flush_before_the_next_mail_is_accepted(make_app, tmp_path, db_url, clock):
    """The database goes away while mail 1's record waits: mail 2 never gets its DATA, the flush says
    "try later", and the next flush resends mail 1 once (one extra copy for one failure) and the rest."""
    relay = Relay(handler=CountingRcpt()).start()
    locker = create_engine(db_url, isolation_level="AUTOCOMMIT").connect()
    try:
        app = _app(make_app, tmp_path, relay.port, db=db_url)
        _queue(app, 3)
        relay.handler.faults.append("slow:1.0")
        errors: list[BaseException] = []

        def flush() -> None:
            try:
                app.outbox.flush(app.transport())
            except Exception as exc:  # noqa: BLE001 - asserted below
                errors.append(exc)

        flushing = threading.Thread(target=flush)
        flushing.start()
        assert _wait(lambda: locker.execute(text("SELECT count(*) FROM outbox WHERE status = 'sending'")).scalar() == 3)
        locker.execute(text("BEGIN"))
        locker.execute(text("SELECT id FROM outbox ORDER BY id LIMIT 1 FOR UPDATE"))
        waiter = ("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                  " AND datname = current_database() AND pid <> pg_backend_pid()")
        assert _wait(lambda: locker.execute(text(waiter)).first() is not None, timeout=10)
        assert _wait(lambda: relay.handler.rcpts == 2)
        locker.execute(text(f"SELECT pg_terminate_backend(pid) FROM ({waiter}) AS w"))  # the recording connection dies
        flushing.join(30)
        locker.execute(text("COMMIT"))
        assert len(errors) == 1 and isinstance(errors[0], TryLater), errors  # exit 75 for `outbox flush`
        assert len(relay.deliveries) == 1  # mail 2 was never accepted: its record could not follow mail 1's
        clock.advance(minutes=10)  # the failed flush's claims expire
        assert app.outbox.flush(app.transport()).sent == 3
        assert sorted(_copies(relay).values()) == [1, 1, 2]
    finally:
        locker.close()
        relay.stop()

def _wait(condition, timeout: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False
