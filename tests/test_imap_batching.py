"""The batch shortcuts the IMAP drain relies on change no outcome: dedup, flood, parse worker, header cache."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

from mailkit import make_mail
from sqlalchemy import func, select

from config import Config, DatabaseSettings, IntakeSettings
from intake.parse.parser import parse_message
from intake.pipeline import RawMail, parse_mails
from tickets.models import OutboxItem, Ticket


def build(make_app, tmp_path, db_url, flood: int = 10):  # type: ignore[no-untyped-def]
    return make_app(config=Config(base_dir=tmp_path, database=DatabaseSettings(url=db_url),
                                  intake=IntakeSettings(flood_per_hour=flood)))


def test_flood_limit_holds_inside_one_batch_and_across_batches(make_app, tmp_path, db_url):
    app = build(make_app, tmp_path, db_url, flood=3)
    first = [RawMail(make_mail(message_id=f"f{i}@x", subject=f"Issue {i}")) for i in range(5)]
    assert [r.action for r in app.pipeline.ingest_batch(first)] == ["created"] * 3 + ["threaded"] * 2
    again = app.pipeline.ingest_batch([RawMail(make_mail(message_id="f9@x", subject="Issue 9"))])
    assert again[0].action == "threaded" and again[0].detail.startswith("flood") and again[0].key == "HC-3"
    other = app.pipeline.ingest_batch([RawMail(make_mail(message_id="o1@x", sender="olga@customer.example"))])
    assert other[0].action == "created"
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 4


def test_duplicates_inside_a_batch_across_batches_and_without_message_id(make_app, tmp_path, db_url):
    app = build(make_app, tmp_path, db_url)
    bare = b"From: a@customer.example\r\nTo: support@localhost\r\nSubject: no id\r\n\r\nhello\r\n"
    mail = make_mail(message_id="d1@x")
    assert [r.action for r in app.pipeline.ingest_batch([RawMail(mail), RawMail(bare), RawMail(mail),
                                                        RawMail(bare)])] == [
        "created", "created", "duplicate", "duplicate"]
    assert [r.action for r in app.pipeline.ingest_batch([RawMail(bare), RawMail(mail)])] == [
        "duplicate", "duplicate"]
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 2


def test_parsing_in_a_worker_process_gives_the_same_outcomes(make_app, tmp_path, sqlite_store):
    app = build(make_app, tmp_path, f"sqlite:///{tmp_path / 'w.db'}")
    mails = [RawMail(make_mail(message_id=f"w{i}@x", sender=f"u{i}@customer.example")) for i in range(4)]
    mails.append(RawMail(b"\x00\x01 not a mail"))
    with ProcessPoolExecutor(max_workers=1) as pool:
        prepared = pool.submit(parse_mails, mails, IntakeSettings(max_attachment_bytes=1024)).result()
    assert isinstance(prepared[-1], str) and prepared[-1].startswith("unparseable")
    results = app.pipeline.ingest_batch(mails, prepared=prepared)
    assert [r.action for r in results] == ["created"] * 4 + ["quarantined"]


def test_memoised_header_policy_reads_the_same_headers(make_app, tmp_path):
    app = build(make_app, tmp_path, f"sqlite:///{tmp_path / 'p.db'}")
    raw = make_mail(subject="Grüße aus Köln", headers={"X-Ticket": "=?utf-8?q?Gr=C3=BC=C3=9Fe?="})
    plain = parse_message(raw)
    cached = app.pipeline._adopt(parse_message(raw))
    for name in ("Subject", "From", "Content-Type", "Message-ID", "X-Ticket"):
        assert cached.msg.get(name) == plain.msg.get(name)
        assert cached.msg.get(name) is cached.msg.get(name)  # parsed once, then the same object
    assert cached.msg.get("X-Missing") is None and plain.msg.get("X-Missing") is None
    assert cached.msg.get("X-Ticket") == "Grüße" and cached.msg.get_content_charset() == "utf-8"
    pickle.dumps(parse_message(raw))  # what crosses the worker boundary must pickle
