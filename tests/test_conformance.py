"""Conformance: every message of the shared corpus, and a generated set of hostile mails, through the
receivers as they run in production - zero exceptions, zero blocked batches (issue #12).

The corpus path comes from ``HYPERCARE_CORPUS`` (tests/conftest.py).  ``ingest`` runs the command's
own code (``intake.cli.cmd_ingest``, batches of 200) in-process, the IMAP poll a real Dovecot with the
real poller; the hostile set (tests/hostile_mails.py: poison values, resource bombs, identity tricks,
a forged bounce) also goes through the real SMTP intake.  SQLite here; the poison classes run on
PostgreSQL too in tests/test_hostile_input.py.
"""

from __future__ import annotations

import argparse
import io
import smtplib
from pathlib import Path

from hostile_mails import BOMBS, POISON
from mailkit import free_port
from sqlalchemy import func, select
from test_corpus_guards import full_messages
from test_corpus_ingest import messages
from test_hostile_input import smtp_lines

from config import Config, DatabaseSettings, IntakeSettings, SmtpInSettings
from intake.cli import cmd_ingest
from intake.receive.imap_poller import ImapPoller
from intake.receive.smtp import SmtpReceiver
from tickets.models import ImapState, Message, QuarantineItem

KNOWN = {"created", "threaded", "duplicate", "ignored", "quarantined", "comment"}


def hostile_set() -> list[bytes]:
    """Every generated class once: poison values, bombs, identity tricks, no From, a forged bounce."""
    mails = [make("conf") for make in (*POISON.values(), *BOMBS.values())]
    mails.append(b"From: ada@example.com <attacker@evil.test>\r\nTo: support@localhost\r\n"
                 b"Subject: #ack\r\nMessage-ID: <id1@evil.test>\r\n\r\n#ack\r\n")
    mails.append(b"To: support@localhost\r\nSubject: no sender\r\nMessage-ID: <nofrom@x.test>\r\n\r\nhello\r\n")
    mails.append(b"From: support@localhost\r\nTo: support@localhost\r\nSubject: ourselves\r\n"
                 b"Message-ID: <self@x.test>\r\n\r\nhello\r\n")
    mails.append(b"From: mallory@evil.test\r\nTo: support@localhost\r\nSubject: Undeliverable: P1\r\n"
                 b"X-Failed-Recipients: ada@example.com\r\nMessage-ID: <forged@evil.test>\r\n\r\nfailed\r\n")
    mails.append(b"\x00\x01\x02 not a mail at all")
    return mails


def desk(make_app, tmp_path: Path, **imap):  # type: ignore[no-untyped-def]
    config = Config(base_dir=tmp_path, database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'conf.db'}"),
                    intake=IntakeSettings(attachments_dir=str(tmp_path / "att")), **imap)
    app = make_app(config=config)
    app.store.upgrade()
    return app


def rows(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return (s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) or 0,
                s.scalar(select(func.count()).select_from(QuarantineItem)) or 0)


def run_ingest(app, paths: list[Path]) -> list[str]:  # type: ignore[no-untyped-def]
    app.out, app.err = io.StringIO(), io.StringIO()
    code = cmd_ingest(app, argparse.Namespace(paths=[str(p) for p in paths]))
    assert code == 0, app.err.getvalue()[-2000:]
    return [line for line in app.out.getvalue().splitlines() if not line.startswith("total:")]


def test_every_corpus_message_through_ingest(make_app, tmp_path, corpus_dir):
    app = desk(make_app, tmp_path)
    files = full_messages(corpus_dir)
    lines = run_ingest(app, files)
    expected = sum(1 for _ in messages(corpus_dir))
    assert len(lines) == expected > 1400
    actions = [line.split(": ", 1)[1].split()[1] for line in lines]
    assert set(actions) <= KNOWN, {a for a in actions if a not in KNOWN}
    assert actions.count("created") > 50  # the human mail does open tickets
    with app.store.read() as s:
        reasons = list(s.scalars(select(QuarantineItem.reason)))
    # Each with its reason; the same bytes quarantined twice are one item, counted (quarantine dedup).
    assert 0 < len(reasons) <= actions.count("quarantined") and all(reasons)


def poll_all(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Poll until INBOX is empty; (fetched, outcomes) - a blocked batch would stop the count short."""
    poller = ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ)
    try:
        report = poller.poll()
    finally:
        poller.close()
    return report.fetched, sum(report.outcomes.values())


def test_every_corpus_message_through_imap_poll(make_app, tmp_path, corpus_dir, dovecot):
    app = desk(make_app, tmp_path, imap=dovecot.settings(batch_size=200))
    app.environ = dovecot.environ
    raws = [raw for _label, _folder, _automatic, raw in messages(corpus_dir)]
    assert dovecot.deliver(raws) == len(raws) > 1400
    fetched, outcomes = poll_all(app)
    assert fetched == outcomes == len(raws)
    assert dovecot.uids("INBOX") == []  # every batch committed and moved: nothing blocks the mailbox
    with app.store.read() as s:
        state = s.scalars(select(ImapState)).one()
    assert state.last_error is None and state.last_success_at is not None


def test_the_hostile_set_through_ingest_imap_and_smtp(make_app, tmp_path, dovecot):
    mails = hostile_set()
    folder = tmp_path / "hostile"
    folder.mkdir()
    for index, raw in enumerate(mails):
        (folder / f"{index:03}.eml").write_bytes(raw)
    cli_app = desk(make_app, tmp_path / "cli")
    lines = run_ingest(cli_app, sorted(folder.iterdir()))
    assert len(lines) == len(mails)
    assert {line.split(": ", 1)[1].split()[1] for line in lines} <= KNOWN

    imap_app = desk(make_app, tmp_path / "imap", imap=dovecot.settings(batch_size=50))
    imap_app.environ = dovecot.environ
    dovecot.deliver(mails)
    assert poll_all(imap_app) == (len(mails), len(mails))
    assert dovecot.uids("INBOX") == []

    smtp_app = desk(make_app, tmp_path / "smtp")
    receiver = SmtpReceiver(smtp_app.pipeline, smtp_app.config.support, SmtpInSettings(port=free_port()))
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as smtp:
            for raw in map(smtp_lines, mails):
                smtp.ehlo()
                smtp.mail("sender@customer.example")
                smtp.rcpt("support@localhost")
                code, answer = smtp.data(raw)
                assert code == 250, answer  # stored (ticket, ignored or quarantined), never 451 or 5xx
    finally:
        receiver.stop()
    stored, quarantined = rows(smtp_app)
    assert stored + quarantined == len(mails)
