"""One message is one outcome, always: poison values through every receiver, on SQLite and PostgreSQL.

Issue #12: a mail with raw invalid 8-bit headers, a NUL byte or a value longer than its column made
the database write fail; that was treated as "database unavailable", so the whole batch rolled back,
SMTP answered 451 forever, ``ingest`` exited 75 (or 1 with a traceback) and an IMAP mailbox was
blocked for good.  Here every poison class goes through the pipeline, the real SMTP intake, the CLI
and a real Dovecot, between two good mails that must be stored.
"""

from __future__ import annotations

import smtplib

import pytest
from hostile_mails import BOMBS, POISON, encoded_word_subject, long_display_name, many_headers
from mailkit import free_port, make_mail
from sqlalchemy import func, select
from test_cli import hypercare

from config import Config, ConfigError, DatabaseSettings, IntakeSettings, SmtpInSettings, load_config
from intake.parse.message import UnparseableMessage
from intake.parse.parser import parse_message
from intake.pipeline import IngestUnavailable, RawMail
from intake.receive.imap_poller import ImapPoller
from intake.receive.smtp import SmtpReceiver
from tickets.models import Message, QuarantineItem, Ticket

GOOD_BEFORE = make_mail(message_id="before@customer.example", sender="first@customer.example")
GOOD_AFTER = make_mail(message_id="after@customer.example", sender="last@customer.example")
STORED = {"created", "threaded", "ignored", "duplicate", "quarantined"}


def poison_batch(tag: str) -> list[bytes]:
    return [GOOD_BEFORE, *(make(tag) for make in POISON.values()), GOOD_AFTER]


def smtp_lines(raw: bytes) -> bytes:
    """SMTP refuses lines over 1000 octets (RFC 5321 4.5.3.1.6) before we see them: fold like an MTA."""
    lines = []
    for line in raw.split(b"\r\n"):
        while len(line) > 900:
            lines.append(line[:900])
            line = b" " + line[900:]
        lines.append(line)
    return b"\r\n".join(lines)


def stored_messages(app) -> dict[str, Message]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        rows = list(s.scalars(select(Message).where(Message.direction == "in")))
        s.expunge_all()
    return {m.message_id: m for m in rows}


def assert_neighbours_and_poison_stored(app, count: int) -> None:  # type: ignore[no-untyped-def]
    messages = stored_messages(app)
    assert {"before@customer.example", "after@customer.example"} <= set(messages)
    with app.store.read() as s:
        quarantined = s.scalar(select(func.count()).select_from(QuarantineItem)) or 0
    assert len(messages) + quarantined >= count  # every mail of the batch has a row: message or quarantine


def test_each_poison_value_is_cleaned_and_said_in_the_notes(make_app, db_url):
    app = make_app(db=db_url)
    app.store.upgrade()
    results = app.pipeline.ingest_batch(RawMail(raw) for raw in poison_batch("pipe"))
    assert [r.action for r in results] == ["created"] * (len(POISON) + 2), [r.line()[:200] for r in results]
    messages = stored_messages(app)
    notes = {mid: " | ".join(m.notes) for mid, m in messages.items()}
    nul = next(m for m in messages.values() if m.message_id.startswith("pipe-nul"))
    assert "\x00" not in nul.subject + nul.body + nul.from_name and "NUL character(s) removed" in notes[nul.message_id]
    long_name = next(m for m in messages.values() if m.message_id.startswith("pipe-longname"))
    assert len(long_name.from_name) == 320
    assert "From name: 5000 characters truncated to 320" in notes[long_name.message_id]
    long_id = next(m for m in messages.values() if m.message_id.startswith("pipe-mmm"))
    assert len(long_id.message_id) == 998 and "Message-ID:" in notes[long_id.message_id]
    broken = next(m for m in messages.values() if m.message_id.startswith("pipe-8bit"))
    assert all("\ud800" > c or c > "\udfff" for c in broken.message_id + broken.subject + broken.from_name)
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == len(POISON) + 2
    # Delivered again (an MTA retrying, an IMAP re-delivery): the cleaned ids still deduplicate.
    again = app.pipeline.ingest_batch(RawMail(raw) for raw in poison_batch("pipe"))
    assert {r.action for r in again} == {"duplicate"}


def test_a_value_the_database_refuses_quarantines_that_mail_not_the_batch(make_app, db_url, monkeypatch):
    """The backstop: a value no cleaning caught is that message's outcome (quarantine), never 'unavailable'."""
    import intake.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "make_storable", lambda parsed: parsed)  # as before the cleaning step
    app = make_app(db=db_url)
    app.store.upgrade()
    results = app.pipeline.ingest_batch(RawMail(raw) for raw in poison_batch("raw"))
    actions = [r.action for r in results]
    assert actions[0] == actions[-1] == "created", [r.line()[:200] for r in results]
    assert set(actions) <= STORED and "quarantined" in actions
    for result in results:
        if result.action == "quarantined":
            assert "\x00" not in result.detail and len(result.detail) < 700  # the reason, not the parameters
    assert_neighbours_and_poison_stored(app, len(results))


def test_a_locked_database_is_still_try_later_for_the_whole_batch(make_app, tmp_path):
    import sqlite3

    app = make_app(config=Config(base_dir=tmp_path, database=DatabaseSettings(
        url=f"sqlite:///{tmp_path / 'locked.db'}", busy_timeout=1)))
    pipeline = app.pipeline  # built (go-live date read) before the lock
    locker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(IngestUnavailable):
            pipeline.ingest_batch(RawMail(raw) for raw in poison_batch("locked"))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert stored_messages(app) == {}  # nothing half-stored; the sender retries the whole batch


def test_smtp_answers_250_for_every_poison_mail(make_app, db_url):
    app = make_app(db=db_url)
    app.store.upgrade()
    receiver = SmtpReceiver(app.pipeline, app.config.support, SmtpInSettings(host="127.0.0.1", port=free_port()))
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as smtp:
            for raw in map(smtp_lines, poison_batch("smtp")):
                smtp.ehlo()
                smtp.mail("sender@customer.example")
                smtp.rcpt("support@localhost")
                code, answer = smtp.data(raw)
                assert code == 250, answer
    finally:
        receiver.stop()
    assert_neighbours_and_poison_stored(app, len(POISON) + 2)


def test_ingest_of_a_poison_folder_exits_0_with_one_line_per_mail(tmp_path, db_url):
    folder = tmp_path / "mails"
    folder.mkdir()
    for index, raw in enumerate(poison_batch("cli")):
        (folder / f"{index:02}.eml").write_bytes(raw)
    (tmp_path / "hypercare.toml").write_text(f'[database]\nurl = "{db_url}"\n')
    result = hypercare("ingest", "mails", cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    lines = [line for line in result.stdout.decode().splitlines() if not line.startswith("total:")]
    assert len(lines) == len(POISON) + 2 and all(line.split()[2] in STORED for line in lines), lines
    assert "Traceback" not in result.stderr.decode()
    single = hypercare("ingest", "mails/01.eml", cwd=tmp_path)  # one file: the old traceback + exit 1
    assert single.returncode == 0 and "duplicate" in single.stdout.decode()


def test_imap_poll_stores_the_whole_poison_batch_and_moves_it(make_app, dovecot, tmp_path, db_url):
    app = make_app(config=Config(base_dir=tmp_path, database=DatabaseSettings(url=db_url),
                                 imap=dovecot.settings(batch_size=50)))
    app.environ = dovecot.environ
    app.store.upgrade()
    dovecot.append(poison_batch("imap"))
    poller = ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ)
    try:
        report = poller.poll()
    finally:
        poller.close()
    assert report.fetched == len(POISON) + 2 and sum(report.outcomes.values()) == len(POISON) + 2
    assert dovecot.uids("INBOX") == []  # nothing left to block the next poll
    assert_neighbours_and_poison_stored(app, len(POISON) + 2)
    again = ImapPoller(app.config.imap, app.store, app.pipeline, app.clock, app.environ)
    try:
        assert again.poll().fetched == 0
    finally:
        again.close()


# --- bounded resources: each bomb is cut (and says so) or quarantined with the limit's name ---------------

LIMIT_NOTES = {
    "encoded-word-subject": "max_encoded_words",
    "encoded-word-header": "max_encoded_words",
    "many-headers": "max_headers",
    "huge-header-block": "max_header_field_bytes",
    "punycode-body": "unknown charset 'punycode'",
    "long-subject": "Subject: over 32768 bytes, the rest ignored ([intake] max_header_field_bytes)",
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_each_bomb_is_bounded_and_says_which_limit(make_app, name):
    app = make_app()
    result = app.pipeline.ingest(BOMBS[name]("bomb"))
    if name in ("deep-mime", "many-parts"):
        assert result.action == "quarantined" and "[intake] max_mime_parts" in result.detail
        return
    if name == "long-word-bounce":  # no limit to name: the point is that it is ignored, in linear time
        assert result.action == "ignored" and result.detail.startswith("bounce")
        return
    assert result.action == "created", result.line()[:300]
    [message] = stored_messages(app).values()
    assert LIMIT_NOTES[name] in " | ".join(message.notes)
    assert len(message.subject) <= 998


def test_limits_come_from_config_and_a_bad_value_is_one_line(tmp_path):
    app_config = Config(base_dir=tmp_path, intake=IntakeSettings(max_headers=5, max_message_bytes=2000,
                                                                 max_mime_depth=1, max_encoded_words=2))
    parsed = parse_message(many_headers("cfg", 20), limits=app_config.intake)
    assert any("more than 5 header fields" in n for n in parsed.notes)
    with pytest.raises(UnparseableMessage, match=r"over \[intake\] max_message_bytes \(2000\)"):
        parse_message(long_display_name("cfg"), limits=app_config.intake)
    words = parse_message(encoded_word_subject("cfg", 10), limits=app_config.intake)
    assert words.subject == "aéaé" and any("more than 2 encoded-words" in n for n in words.notes)
    (tmp_path / "hypercare.toml").write_text("[intake]\nmax_headers = 0\n")
    with pytest.raises(ConfigError, match=r"\[intake\] max_headers: expected a whole number above 0"):
        load_config(tmp_path / "hypercare.toml")


def test_only_mail_charsets_are_decoded():
    raw = (b"From: a@customer.example\r\nSubject: =?punycode?q?abc-?= =?rot13?q?uryyb?=\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=zlib_codec\r\n\r\nplain text\r\n")
    parsed = parse_message(raw)
    assert parsed.body_full == "plain text" and "uryyb" in parsed.subject
    assert any("'zlib_codec'" in n for n in parsed.notes) and any("'rot13' is not a mail" in n for n in parsed.notes)


def test_smtp_refuses_a_transfer_beyond_max_transfers_with_451(make_app):
    app = make_app()
    receiver = SmtpReceiver(app.pipeline, app.config.support,
                            SmtpInSettings(host="127.0.0.1", port=free_port(), max_transfers=1))
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port) as first, smtplib.SMTP("127.0.0.1", receiver.port) as second:
            for client in (first, second):
                client.ehlo()
                client.mail("a@customer.example")
                client.rcpt("support@localhost")
            first.putcmd("data")
            assert first.getreply()[0] == 354
            first.send(make_mail(message_id="slow@customer.example").replace(b"\n", b"\r\n")[:200])
            code, answer = second.docmd("DATA")
            assert code == 451 and b"too many transfers" in answer
            first.send(b"\r\n.\r\n")
            assert first.getreply()[0] == 250
            assert second.docmd("DATA")[0] == 354  # the slot is free again
            second.send(make_mail(message_id="next@customer.example") + b"\r\n.\r\n")
            assert second.getreply()[0] == 250
    finally:
        receiver.stop()


def test_an_attachment_over_the_cap_is_measured_without_entering_the_parser():
    import base64
    import hashlib

    from hostile_mails import big_attachment

    raw = big_attachment("aside", 3 * 1024 * 1024)
    payload = base64.b64decode(raw.split(b"filename=log.bin\r\n\r\n")[1].split(b"--x--")[0])
    parsed = parse_message(raw, max_attachment_bytes=1024 * 1024)
    [attachment] = [a for a in parsed.attachments if a.filename == "log.bin"]
    assert attachment.payload is None and attachment.size == len(payload)
    assert attachment.sha256 == hashlib.sha256(payload).hexdigest()
    assert parsed.body_full == "See the log." and any("omitted" in n for n in parsed.notes)
    # The marker is per process: a mail cannot forge an "omitted" attachment with a chosen hash.
    forged = (b"From: a@customer.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
              b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
              b"--z\r\nContent-Type: application/octet-stream\r\n\r\nhypercare-set-aside-00 5 abc\r\n--z--\r\n")
    assert all(a.sha256 != "abc" for a in parse_message(forged).attachments)
