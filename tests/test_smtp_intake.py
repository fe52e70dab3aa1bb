"""The real aiosmtpd intake, end to end, and the daemon that hosts it."""

from __future__ import annotations

import json
import mailbox
import multiprocessing
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from mailkit import free_port, make_mail, parse
from sqlalchemy import select

from config import SmtpInSettings
from intake.parse_pool import PipeWorker
from intake.pipeline import classify_in_worker
from intake.receive.smtp import PortInUse, SmtpReceiver, check_port_free
from tickets.models import QuarantineItem, Ticket

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def receiver(make_app):  # type: ignore[no-untyped-def]
    app = make_app()
    rx = SmtpReceiver(app.pipeline, app.config.support, SmtpInSettings(host="127.0.0.1", port=free_port()))
    rx.start()
    yield app, rx
    rx.stop()


def test_mail_sent_with_smtplib_becomes_ticket_and_ack_within_a_second(receiver, tmp_path):
    app, rx = receiver
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", rx.port) as smtp:
        code, answer = smtp.docmd("NOOP")
        smtp.sendmail("maria@customer.example", ["support@localhost"], make_mail())
    with app.store.session() as s:
        ticket = s.scalar(select(Ticket))
        assert ticket is not None and ticket.key == "HC-1"  # stored before the 250 was given
    assert app.outbox.flush(app.transport()).sent == 1
    assert time.monotonic() - started < 1.0
    box = mailbox.Maildir(str(tmp_path / "var" / "outbox"), create=False)
    [ack] = [parse(box.get_bytes(k)) for k in box.iterkeys()]
    assert ack["To"] == "maria@customer.example" and "[HC-1]" in ack["Subject"]


def test_plus_address_accepted_other_recipients_refused_550(receiver):
    _app, rx = receiver
    with smtplib.SMTP("127.0.0.1", rx.port) as smtp:
        smtp.ehlo()
        smtp.mail("a@customer.example")
        assert smtp.rcpt("support+HC-1@localhost")[0] == 250
        assert smtp.rcpt("SUPPORT@LOCALHOST")[0] == 250
        code, _ = smtp.rcpt("someone@localhost")
        assert code == 550
        code, _ = smtp.rcpt("support@elsewhere.example")
        assert code == 550


def test_plain_address_shortcut_reads_every_address_as_aiosmtpd_does():
    """``_Bounded._getaddr`` skips the RFC 5322 parser for ``<local@domain>``; it must answer as it would."""
    import random

    from aiosmtpd.smtp import SMTP

    from intake.receive.smtp import BoundedSMTP

    ours, theirs = BoundedSMTP(object()), SMTP(object())
    cases = ["<a@b>", "<a@b> SIZE=100", "<a@b>\tBODY=8BITMIME", "<a@b> (comment) SIZE=1", "<a@b>(c)", " <a@b>",
             "<a..b@c>", "<a@b.>", "<>", "<a@b>x", '<"a b"@c>', "<a@[127.0.0.1]>", "a@b", "<a@b> ", "<a@b>\n",
             "<a@b> \r\n", "<a@b> \x0bSIZE=1", "<a@b> \xa0x", "<a@b> \x00", "<mar\x00ia@b>", "<maria@b\udcff>",
             "<m\u00e4ria@b>", "<" + "a" * 64 + "@b>", "<" + "a" * 65 + "@b>", "<" + "a" * 100_000 + "@b>",
             "<a@b>" + " SIZE=1" * 1000, "<A!#$%&'*+/=?^_`{|}~-@x-y.z>", "<a@-b->", "<a@b>>", "<<a@b>"]
    rnd = random.Random(17)
    local, domain = list("aZ9.!#$%&'*+/=?^_`{|}~-\"( \\\u00e9\x00"), list("aZ9.-[]_ \u00e9")
    tails = ["", " ", "\t", " SIZE=5", " (x)", "(x)", "x", "\n", " \r\n", " \x1cx", " \u2003y", ">"]
    for _ in range(20_000):
        cases.append(rnd.choice(["", " "]) + "<" + "".join(rnd.choices(local, k=rnd.choice([1, 3, 64, 65]))) + "@"
                     + "".join(rnd.choices(domain, k=rnd.randint(1, 6))) + ">" + rnd.choice(tails))

    def answer(server: SMTP, arg: str) -> object:
        try:
            return server._getaddr(arg)
        except Exception as exc:  # noqa: BLE001 - aiosmtpd's parser raises on some hostile input; so must we
            return type(exc).__name__

    assert [c for c in cases if answer(ours, c) != answer(theirs, c)] == []
    assert ours._getaddr("<maria@customer.example> SIZE=12") == ("maria@customer.example", "SIZE=12")


def test_database_unavailable_answers_451_so_the_sender_retries(receiver, monkeypatch):
    app, rx = receiver
    from intake.pipeline import IngestUnavailable

    def down(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise IngestUnavailable("database unavailable: disk I/O error")

    monkeypatch.setattr(app.pipeline, "ingest_batch", down)
    with smtplib.SMTP("127.0.0.1", rx.port) as smtp, pytest.raises(smtplib.SMTPDataError) as info:
        smtp.sendmail("a@customer.example", ["support@localhost"], make_mail())
    assert info.value.smtp_code == 451


def test_parallel_sessions_share_transactions_and_each_gets_its_own_answer(receiver, monkeypatch):
    """Group commit: mail arriving while a batch is stored goes into the next batch together."""
    app, rx = receiver
    original = app.pipeline.ingest_batch
    sizes: list[int] = []
    first_entered, first_may_finish = threading.Event(), threading.Event()

    def observed(mails, **kw):  # type: ignore[no-untyped-def]
        mails = list(mails)
        if not sizes:
            first_entered.set()
            first_may_finish.wait(30)  # hold the first batch until the other seven sessions queued
        sizes.append(len(mails))
        return original(mails, **kw)

    monkeypatch.setattr(app.pipeline, "ingest_batch", observed)
    answers: dict[int, tuple[int, bytes]] = {}

    def session(i: int) -> None:
        with smtplib.SMTP("127.0.0.1", rx.port, timeout=60) as smtp:
            raw = make_mail(message_id=f"g{i}@customer.example", sender=f"u{i}@customer.example",
                            subject=f"Report export broken #{i}", body="The export button does nothing.")
            smtp.ehlo()
            smtp.mail("u@customer.example")
            smtp.rcpt("support@localhost")
            answers[i] = smtp.data(raw)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    threads[0].start()
    assert first_entered.wait(30)  # the first mail is being stored
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 30
    while len(rx.handler.store._pending) < 7 and time.monotonic() < deadline:
        time.sleep(0.01)  # a synchronisation with the seven sessions, not an SLA
    first_may_finish.set()
    for thread in threads:
        thread.join(60)
    assert sizes == [1, 7]
    assert all(code == 250 for code, _text in answers.values()) and len(answers) == 8
    keys = sorted(text.decode().split()[1] for _code, text in answers.values())
    assert keys == sorted(f"HC-{n}" for n in range(1, 9))  # each session hears its own ticket
    with app.store.read() as s:
        assert len(s.scalars(select(Ticket)).all()) == 8


def test_a_group_waits_for_the_open_sessions_mail_and_a_lone_session_is_stored_at_once(receiver, monkeypatch):
    """Group commit timing: with three sessions open, the first mail waits for the other two (one commit for
    three); with one session open its mail is stored at once, however long the group could wait."""
    from intake.receive import group_commit

    app, rx = receiver
    monkeypatch.setattr(group_commit, "LINGER_MAX", 60.0)  # so long that only joining can end the wait
    rx.handler.store._last_store = 1000.0
    original = app.pipeline.ingest_batch
    sizes: list[int] = []

    def observed(mails, **kw):  # type: ignore[no-untyped-def]
        mails = list(mails)
        sizes.append(len(mails))
        return original(mails, **kw)

    monkeypatch.setattr(app.pipeline, "ingest_batch", observed)
    sessions = [smtplib.SMTP("127.0.0.1", rx.port, timeout=30) for _ in range(3)]
    answers: dict[int, tuple[int, bytes]] = {}

    def send(i: int) -> None:
        raw = make_mail(message_id=f"w{i}@customer.example", sender=f"w{i}@customer.example",
                        subject=f"Report export broken #{i}", body="The export button does nothing.")
        smtp = sessions[i]
        smtp.ehlo()
        smtp.mail(f"w{i}@customer.example")
        smtp.rcpt("support@localhost")
        answers[i] = smtp.data(raw)

    try:
        threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for smtp in sessions[1:]:
            smtp.quit()
    assert sizes == [3] and [answers[i][0] for i in range(3)] == [250, 250, 250]
    deadline = time.monotonic() + 30
    while rx.slots.sessions > 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # the closed sessions' connection_lost, not an SLA
    raw = make_mail(message_id="alone@customer.example", sender="alone@customer.example",
                    subject="Invoice layout shifted", body="The invoice layout shifted.")
    with sessions[0]:
        sessions[0].sendmail("alone@customer.example", ["support@localhost"], raw)  # within its 30 s timeout
    assert sizes == [3, 1]


@pytest.fixture(params=["pipe", "process_pool"])
def pooled_receiver(make_app, request):  # type: ignore[no-untyped-def]
    """The receiver as ``run`` builds it: a forked parse worker (before the controller's thread starts),
    answering over a pipe in the calling thread (``run``) or a ProcessPoolExecutor (as ``poll --once``'s)."""
    app = make_app()
    app.pipeline  # noqa: B018 - the opener exists before the worker is forked
    if request.param == "pipe":
        pool = PipeWorker(app.opener)
    else:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                                   initializer=classify_in_worker, initargs=(app.opener,))
    worker = pool.submit(os.getpid).result(timeout=60)
    rx = SmtpReceiver(app.pipeline, app.config.support, SmtpInSettings(host="127.0.0.1", port=free_port()), pool)
    rx.start()
    yield app, rx, worker
    rx.stop()
    pool.shutdown(cancel_futures=True)


def _send_in_parallel(port: int, mails: list[bytes]) -> list[tuple[int, str]]:
    answers: list[tuple[int, str]] = [(0, "")] * len(mails)

    def session(i: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.ehlo()
            smtp.mail("u@customer.example")
            smtp.rcpt("support@localhost")
            code, text = smtp.data(mails[i])
            answers[i] = (code, text.decode())

    threads = [threading.Thread(target=session, args=(i,)) for i in range(len(mails))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_with_a_parse_worker_the_sessions_mail_is_parsed_there_and_each_hears_its_own_outcome(
        pooled_receiver, monkeypatch):
    """Parsing and classification off the storing thread; a poison mail never takes its group down."""
    app, rx, _worker = pooled_receiver
    original = app.pipeline.ingest_batch
    groups: list[list] = []

    def observed(mails, **kw):  # type: ignore[no-untyped-def]
        mails = list(mails)
        groups.append(list(kw.get("prepared") or [None] * len(mails)))
        return original(mails, **kw)

    monkeypatch.setattr(app.pipeline, "ingest_batch", observed)
    problems = ("Export button does nothing", "Invoice layout shifted", "Logo blurry in footer",
                "Dashboard tile shows zero", "Calendar sync skips Mondays", "Quote PDF cut off",
                "Lead form loses phone")
    mails = [make_mail(message_id=f"p{i}@customer.example", sender=f"u{i}@customer.example",
                       subject=f"{problem} #{i}", body=f"{problem}.") for i, problem in enumerate(problems)]
    poison = make_mail(message_id="nofrom@customer.example")
    poison = poison.replace(b"From: Maria Keller <maria@customer.example>\n", b"")
    assert b"From:" not in poison
    answers = _send_in_parallel(rx.port, [*mails[:3], poison, *mails[3:]])
    assert all(code == 250 for code, _text in answers), answers
    words = [text.split()[1] for _code, text in answers]
    assert words[3] == "quarantined" and sorted(words[:3] + words[4:]) == sorted(f"HC-{n}" for n in range(1, 8))
    prepared = [item for group in groups for item in group]
    assert len(prepared) == 8 and all(item is not None for item in prepared)  # parsed in the worker, not here
    assert all(getattr(item, "verdict", None) is not None for item in prepared)  # and classified there
    with app.store.read() as s:
        assert len(s.scalars(select(Ticket)).all()) == 7
        [held] = s.scalars(select(QuarantineItem)).all()
        assert "From" in held.reason


def test_guards_run_in_the_parse_worker_and_what_they_stop_is_still_stopped(pooled_receiver, monkeypatch):
    """The worker runs the guards (``guards_clear``) where they need no database; the storing thread does not
    run them again for a clear mail, and an auto-reply, a bounce of our mail or a hostile one is ignored as before."""
    import intake.batch_store

    app, rx, _worker = pooled_receiver
    ran: list[str] = []
    original = intake.batch_store.first_hit

    def counted(parsed, ctx):  # type: ignore[no-untyped-def]
        ran.append(parsed.message_id)
        return original(parsed, ctx)

    monkeypatch.setattr(intake.batch_store, "first_hit", counted)
    plain = make_mail(message_id="g1@customer.example", sender="g1@customer.example", subject="Export broken")
    away = make_mail(message_id="g2@customer.example", sender="g2@customer.example", subject="Out of office",
                     headers={"Auto-Submitted": "auto-replied"})
    bounce = make_mail(message_id="g3@customer.example", sender="mailer-daemon@customer.example",
                       subject="Undelivered Mail Returned to Sender",
                       body="Delivery failed for x@customer.example\n<hc-ack-1@localhost>\n")
    hostile = make_mail(message_id="g4@customer.example", sender="g4@customer.example",
                        subject="Auto: away " + "\u00e9" * 2000, body="x\x00y\r\n" * 50_000,
                        headers={"Precedence": "bulk"})
    answers = _send_in_parallel(rx.port, [plain, away, bounce, hostile])
    words = [text.split()[1] for _code, text in answers]
    assert [code for code, _text in answers] == [250] * 4
    assert words[0] == "HC-1" and words[1:] == ["ignored"] * 3, answers
    assert "g1@customer.example" not in ran  # cleared by the worker: not run twice


def test_a_dead_parse_worker_costs_speed_never_mail(pooled_receiver):
    app, rx, worker = pooled_receiver
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{worker}").exists() and \
            Path(f"/proc/{worker}/stat").read_text().split()[2] != "Z":
        time.sleep(0.05)  # waiting for the kernel to end the worker, not an SLA
    mails = [make_mail(message_id=f"d{i}@customer.example", sender=f"d{i}@customer.example",
                       subject=f"Problem number {i} in module {i * 7}", body=f"Module {i * 7} fails.")
             for i in range(3)]
    answers = _send_in_parallel(rx.port, mails)
    assert [code for code, _text in answers] == [250, 250, 250]
    with app.store.read() as s:
        assert len(s.scalars(select(Ticket)).all()) == 3


def test_port_in_use_is_one_clear_line():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"127.0.0.1:{port} is already in use; .*\[smtp_in\] port"):
            check_port_free("127.0.0.1", port, "[smtp_in] port")


def _write_config(tmp_path: Path, smtp_port: int, dash_port: int) -> None:
    (tmp_path / "hypercare.toml").write_text(
        f"[smtp_in]\nport = {smtp_port}\n[dashboard]\nport = {dash_port}\n")


def test_daemon_starts_receives_mail_and_stops_on_sigterm(tmp_path):
    smtp_port = free_port()
    _write_config(tmp_path, smtp_port, free_port())
    env = {k: v for k, v in os.environ.items() if k != "HYPERCARE_CONFIG"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "service.py"), "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        assert "hypercare running" in line, proc.stderr.read().decode() if proc.poll() is not None else line
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            smtp.sendmail("maria@customer.example", ["support@localhost"], make_mail(message_id="d1@x"))
        deadline = time.monotonic() + 10
        outbox = tmp_path / "var" / "outbox" / "new"
        while time.monotonic() < deadline and not (outbox.is_dir() and any(outbox.iterdir())):
            time.sleep(0.1)  # waiting for the daemon's outbox beat, not for an SLA
        assert outbox.is_dir() and len(list(outbox.iterdir())) == 1
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - stopped_at < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    listing = subprocess.run([sys.executable, str(ROOT / "service.py"), "tickets", "--json"], cwd=tmp_path,
                             capture_output=True, env=env, check=True)
    assert [t["key"] for t in json.loads(listing.stdout)] == ["HC-1"]


def test_daemon_refuses_a_busy_port_with_exit_2(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        _write_config(tmp_path, sock.getsockname()[1], free_port())
        env = {k: v for k, v in os.environ.items() if k != "HYPERCARE_CONFIG"}
        result = subprocess.run([sys.executable, str(ROOT / "service.py"), "run"], cwd=tmp_path, env=env,
                                capture_output=True, timeout=60)
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and "already in use" in err[-1] and "Traceback" not in result.stderr.decode()


def test_lmtp_intake_answers_once_per_recipient_and_stores_once(make_app):
    from config import Config

    app = make_app()
    app = make_app(Config(base_dir=app.config.base_dir))
    rx = SmtpReceiver(app.pipeline, app.config.support,
                      SmtpInSettings(host="127.0.0.1", port=free_port(), protocol="lmtp"))
    rx.start()
    try:
        with smtplib.LMTP("127.0.0.1", rx.port) as lmtp:
            lmtp.connect("127.0.0.1", rx.port)
            refused = lmtp.sendmail("maria@customer.example", ["support@localhost", "support+urgent@localhost"],
                                    make_mail(message_id="lmtp1@x"))
            assert refused == {}
            # smtplib reads one DATA answer; RFC 2033 sends one per recipient: the second is waiting.
            assert lmtp.getreply()[0] == 250
            code, _ = lmtp.docmd("HELO", "x")
            assert code == 500  # LMTP speaks LHLO only
    finally:
        rx.stop()
    with app.store.read() as s:
        assert [t.key for t in s.scalars(select(Ticket))] == ["HC-1"]
