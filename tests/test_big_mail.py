"""Big mail (issue #12): attachments decoded once, outside the stdlib parser; SMTP DATA read in blocks.

The figures (seconds, ratios, peak RSS) are in bench/hostile.py and docs/performance.md; these tests
pin the mechanisms that make them: operation counts and what the stdlib parser is given, never time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import multiprocessing
import pickle
import smtplib
from concurrent.futures import ProcessPoolExecutor
from email.message import Message as EmailMessage

import pytest
from hostile_mails import big_attachment, big_attachments
from mailkit import free_port
from sqlalchemy import event, select

import intake.parse.parser as parser_module
from config import Config, IntakeSettings, SmtpInSettings
from intake.parse.message import ParsedMessage
from intake.parse.parser import normalize_newlines, parse_message
from intake.pipeline import RawMail, classify_in_worker, parse_mails
from intake.receive.smtp import SmtpReceiver, read_data
from intake.rows import BIG_RAW_BYTES
from tickets.models import Attachment, Message

MB = 1024 * 1024


def encoded(raw: bytes) -> list[bytes]:
    """The base64 text of each attachment of a ``big_attachments`` mail, line ends removed."""
    parts = raw.split(b"Content-Disposition: attachment; filename=")[1:]
    return [part.split(b"\r\n\r\n", 1)[1].split(b"--x")[0].translate(None, b"\r\n") for part in parts]


def payloads(raw: bytes) -> list[bytes]:
    """The decoded attachments of a ``big_attachments`` mail, by the stdlib (the reference)."""
    return [base64.b64decode(text) for text in encoded(raw)]


def leaf_payload_chars(msg: EmailMessage) -> int:
    return sum(len(part.get_payload()) for part in msg.walk() if not part.is_multipart())


def test_attachments_within_the_cap_are_decoded_once_outside_the_stdlib_parser(monkeypatch) -> None:
    raw = big_attachments("within", 3 * MB, parts=3)
    expected = payloads(raw)
    decodes: list[int] = []
    original = parser_module.binascii.a2b_base64
    monkeypatch.setattr(parser_module.binascii, "a2b_base64",
                        lambda data, **kw: decodes.append(len(data)) or original(data, **kw))
    parsed = parse_message(raw)
    logs = [a for a in parsed.attachments if a.filename.startswith("log")]
    assert [a.payload for a in logs] == expected  # kept whole: they go to the attachment store
    assert [a.sha256 for a in logs] == [hashlib.sha256(p).hexdigest() for p in expected]
    assert [a.size for a in logs] == [len(p) for p in expected]
    assert parsed.body_full == "See the logs."
    # The stdlib parser saw one marker line per attachment, not 3 MB of base64 lines ...
    assert parsed.msg is not None and leaf_payload_chars(parsed.msg) < 1000
    # ... and each base64 character was decoded exactly once (1 MB blocks, never the part again).
    assert sum(decodes) == sum(len(text) for text in encoded(raw))
    # The content hash is still the one of the whole mail with normalised newlines (dedup is unchanged).
    assert parsed.content_hash == hashlib.sha256(normalize_newlines(raw)).hexdigest()


def test_a_big_text_body_in_base64_stays_the_body() -> None:
    text = ("Die Schnittstelle meldet Fehler 42. " * 20 + "\r\n") * 600  # ~430 KB, over the set-aside size
    raw = (b"From: a@customer.example\r\nSubject: log\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; "
           b"charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(text.encode()))
    parsed = parse_message(raw)
    assert parsed.attachments == []
    assert parsed.body_full == text.replace("\r\n", "\n").strip("\n")
    over = parse_message(raw, max_attachment_bytes=1000)  # too big to keep: recorded, never the marker as text
    assert "hypercare-set-aside" not in over.body_full
    assert [a.size for a in over.attachments] == [len(text.encode())]


@pytest.mark.parametrize("newline", [b"\r\n", b"\n", b"\r"])
def test_content_hash_and_digest_do_not_depend_on_where_the_blocks_are_cut(newline: bytes, monkeypatch) -> None:
    raw = big_attachment("cut", 2 * MB).replace(b"\r\n", b"\n").replace(b"\n", newline)
    monkeypatch.setattr(parser_module, "_CHUNK", 4099)  # an odd block size: cuts fall inside lines and CRLFs
    parsed = parse_message(raw, max_attachment_bytes=1024)
    [log] = [a for a in parsed.attachments if a.filename == "log.bin"]
    payload = base64.b64decode(raw.split(b"filename=log.bin" + newline * 2)[1].split(b"--x--")[0])
    assert (log.size, log.sha256, log.payload) == (len(payload), hashlib.sha256(payload).hexdigest(), None)
    assert parsed.content_hash == hashlib.sha256(normalize_newlines(raw)).hexdigest()


class CountingReader(asyncio.StreamReader):
    """A stream reader that counts the awaits ``read_data`` needs."""

    calls = 0

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        self.calls += 1
        return await super().readuntil(separator)


def read(stream: bytes, limit: int | None = None, block: int = 1 << 20) -> tuple[bytes | None, bytes, int]:
    """``read_data`` over *stream*; returns the message, what is left for the next command, the awaits."""
    async def run() -> tuple[bytes | None, bytes, int]:
        reader = CountingReader(limit=block)
        reader.feed_data(stream)
        reader.feed_eof()
        data = await read_data(reader, limit)
        return data, await reader.read(), reader.calls

    return asyncio.run(run())


@pytest.mark.parametrize(("stream", "message"), [
    (b".\r\n", b""),
    (b"a\r\n.\r\n", b"a\r\n"),
    (b"x.\r\ny.\r\n\r\n.\r\n", b"x.\r\ny.\r\n\r\n"),  # lines ending in "." are text
    (b"..hidden\r\n...\r\nmid .. dots\r\n.\r\n", b".hidden\r\n..\r\nmid .. dots\r\n"),  # dot-stuffing undone
    (b"\r\n.\r\n", b"\r\n"),
])
def test_data_ends_only_at_a_line_of_one_dot(stream: bytes, message: bytes) -> None:
    data, rest, _calls = read(stream + b"QUIT\r\n")
    assert data == message
    assert rest == b"QUIT\r\n"  # the next command is left for the session


def test_data_is_read_in_blocks_not_lines() -> None:
    body = base64.encodebytes(bytes(range(256)) * 20_000).replace(b"\n", b"\r\n")  # 5 MB, 90,000 lines
    data, _rest, calls = read(body + b".\r\n", block=64 * 1024)
    assert data == body
    assert calls < len(body) // (32 * 1024)  # one await per block (aiosmtpd's loop: one per line)


def test_data_over_the_size_limit_is_read_to_its_end_and_dropped() -> None:
    data, rest, _calls = read(b"x" * 5000 + b"\r\n.\r\nQUIT\r\n", limit=1000, block=1024)
    assert data is None and rest == b"QUIT\r\n"


def test_a_big_mail_over_smtp_is_stored_whole_with_its_attachments(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(Config(base_dir=tmp_path, intake=IntakeSettings(max_attachment_bytes=2 * MB)))
    receiver = SmtpReceiver(app.pipeline, app.config.support, SmtpInSettings(host="127.0.0.1", port=free_port()))
    raw = big_attachments("smtp", 6 * MB, parts=3)
    receiver.start()
    try:
        with smtplib.SMTP("127.0.0.1", receiver.port, timeout=120) as client:
            assert client.sendmail("bob@customer.example", ["support@localhost"], raw) == {}
            # A line starting with "." survives the transparency procedure both ways.
            dotted = raw.replace(b"See the logs.", b".See the logs.\r\n.").replace(b"big-parts@", b"dotted@")
            assert client.sendmail("bob@customer.example", ["support@localhost"], dotted) == {}
    finally:
        receiver.stop()
    with app.store.read() as session:
        stored = {m.message_id: m.raw for m in session.scalars(select(Message).where(Message.direction == "in"))}
        files = sorted((a.size, a.sha256, a.stored) for a in session.scalars(select(Attachment)))
    assert stored == {"smtp-big-parts@customer.example": raw, "smtp-dotted@customer.example": dotted}
    expected = sorted((len(p), hashlib.sha256(p).hexdigest(), "file") for p in payloads(raw))
    assert files == sorted(expected * 2)
    for _size, digest, _stored in expected:
        assert hashlib.sha256(app.pipeline.attachments.get(digest) or b"").hexdigest() == digest


def test_the_parse_worker_does_not_send_the_raw_mail_back(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``poll --once`` parses in a forked worker: the 47 MB crossed the process boundary twice (and were held
    twice in the storing process); now only what the worker made comes back, the bytes are put back here."""
    app = make_app(Config(base_dir=tmp_path, intake=IntakeSettings(max_attachment_bytes=1024)))
    raw = big_attachment("worker", 2 * MB)
    mails = [RawMail(raw, "imap")]
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                             initializer=classify_in_worker, initargs=(app.opener,)) as pool:
        prepared = pool.submit(parse_mails, mails, app.config.intake, app.clock.now()).result()
    [parsed] = prepared
    assert isinstance(parsed, ParsedMessage) and parsed.raw == b"" and parsed.verdict is not None
    assert len(pickle.dumps(parsed)) < len(raw) // 100
    [result] = app.pipeline.ingest_batch(mails, prepared=prepared)
    assert result.action == "created"
    with app.store.read() as session:
        [stored] = session.scalars(select(Message).where(Message.message_id == "worker-big@customer.example"))
        # Its attachment was over the cap: the raw kept is the headers and an excerpt of the mail received.
        assert stored.raw and raw.startswith(stored.raw.split(b"\n[hypercare:")[0])


def test_big_raw_bytes_reach_sqlite_in_pieces_on_both_write_paths(make_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """SQLite holds two copies of a bound blob while inserting it (+100 MB for a 48 MB mail): the raw bytes
    of a big mail are written through incremental blob I/O instead, 1 MiB at a time, on the batched path
    (a new ticket) and the per-message path (a reply on it), and read back whole."""
    app = make_app(Config(base_dir=tmp_path, intake=IntakeSettings(max_attachment_bytes=2 * MB)))
    app.store.upgrade()
    bound: list[int] = []

    def largest_parameter(_conn, _cursor, _statement, parameters, _context, _executemany) -> None:  # type: ignore[no-untyped-def]
        rows = parameters if isinstance(parameters, list) else [parameters]
        for row in rows:
            values = row.values() if isinstance(row, dict) else row
            bound.append(max((len(v) for v in values if isinstance(v, bytes | memoryview)), default=0))

    event.listen(app.store.engine, "before_cursor_execute", largest_parameter)
    first = big_attachments("first", 3 * MB, parts=2)
    reply = big_attachments("reply", 3 * MB, parts=2).replace(b"Subject: Export fails",
                                                              b"Subject: Re: [HC-1] Export fails")
    results = [app.pipeline.ingest(first), app.pipeline.ingest(reply)]
    assert [r.action for r in results] == ["created", "threaded"] and results[1].key == "HC-1"
    assert bound and max(bound) <= BIG_RAW_BYTES
    with app.store.read() as session:
        stored = {m.message_id: m.raw for m in session.scalars(select(Message).where(Message.direction == "in"))}
    assert stored == {"first-big-parts@customer.example": first, "reply-big-parts@customer.example": reply}
