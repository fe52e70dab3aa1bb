"""Only a true duplicate is a duplicate (issue 11): a uniqueness conflict is resolved by looking.

The campaign found accepted mail answered ``250 duplicate queued`` and dropped: on a fresh
PostgreSQL database the first tickets raced to create the counter row, and after a change of
``[support] ticket_prefix`` every new ticket collided with an old number.  These tests send mail
through the real SMTP intake at once and count tickets.
"""

from __future__ import annotations

import dataclasses
import smtplib
import threading
from collections.abc import Iterator

import pytest
from conftest import new_pg_database
from mailkit import free_port, make_mail
from sqlalchemy import delete, func, select

from config import Config, DatabaseSettings, SmtpInSettings, SupportSettings
from intake.receive.smtp import SmtpReceiver
from tickets.models import Counter, Message, QuarantineItem, Ticket
from tickets.store import Store, next_number

N = 8


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A brand-new PostgreSQL database (no schema, no counter row), dropped afterwards."""
    with new_pg_database() as url:
        yield url


def _send_at_once(port: int, count: int, tag: str) -> list[tuple[int, str]]:
    """*count* first mails from *count* different reporters, released together by a barrier."""
    barrier = threading.Barrier(count)
    answers: list[tuple[int, str]] = []

    def one(i: int) -> None:
        data = make_mail(subject=f"{tag} request {i}", body=f"Problem number {i} of {tag}.",
                         sender=f"user{i}.{tag}@customer.example")
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.ehlo()
            barrier.wait()
            smtp.mail(f"user{i}.{tag}@customer.example")
            smtp.rcpt("support@localhost")
            code, answer = smtp.data(data)
            answers.append((code, answer.decode()))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return answers


def _desk(make_app, url: str, prefix: str):  # type: ignore[no-untyped-def]
    cfg = dataclasses.replace(Config(), support=SupportSettings(ticket_prefix=prefix),
                              database=DatabaseSettings(url=url))
    app = make_app(cfg)
    receiver = SmtpReceiver(app.pipeline, app.config.support, SmtpInSettings(host="127.0.0.1", port=free_port()))
    receiver.start()
    return app, receiver


def _keys(app) -> list[str]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return sorted(s.scalars(select(Ticket.key)))


def test_first_mails_at_once_on_fresh_postgresql_then_after_a_prefix_change(make_app, fresh_pg_url):
    app, receiver = _desk(make_app, fresh_pg_url, "HC")
    try:
        answers = _send_at_once(receiver.port, N, "first")
    finally:
        receiver.stop()
    assert len(answers) == N and all(code == 250 for code, _ in answers), answers
    assert not [a for _, a in answers if "duplicate" in a], answers
    assert len(_keys(app)) == N
    app.store.dispose()

    app2, receiver2 = _desk(make_app, fresh_pg_url, "SD")
    try:
        answers = _send_at_once(receiver2.port, N, "second")
    finally:
        receiver2.stop()
    assert all(code == 250 for code, _ in answers) and not [a for _, a in answers if "duplicate" in a], answers
    keys = _keys(app2)
    assert len(keys) == 2 * N
    # One sequence across prefixes (docs/operations.md): the new prefix continues the numbers.
    assert sorted(int(k.split("-")[1]) for k in keys if k.startswith("SD-")) == list(range(N + 1, 2 * N + 1))
    with app2.store.read() as s:
        assert s.scalar(select(func.count()).select_from(QuarantineItem)) == 0


def test_prefix_change_keeps_every_new_request(make_app, db_url):
    """On SQLite and PostgreSQL: after ``ticket_prefix`` changes, new mail still opens tickets."""
    cfg = dataclasses.replace(Config(), database=DatabaseSettings(url=db_url))
    app = make_app(cfg)
    first = [app.pipeline.ingest(make_mail(sender=f"a{i}@customer.example")) for i in range(3)]
    assert [r.key for r in first] == ["HC-1", "HC-2", "HC-3"]
    app.store.dispose()
    app2 = make_app(dataclasses.replace(cfg, support=SupportSettings(ticket_prefix="SD")))
    later = [app2.pipeline.ingest(make_mail(sender=f"b{i}@customer.example")) for i in range(3)]
    assert [(r.action, r.key) for r in later] == [("created", "SD-4"), ("created", "SD-5"), ("created", "SD-6")]


def test_desk_that_counted_per_prefix_continues_above_its_highest_number(make_app, db_url):
    """A database from before the single sequence has a ``ticket:HC`` counter: no number is reused."""
    app = make_app(dataclasses.replace(Config(), database=DatabaseSettings(url=db_url)))
    for i in range(3):
        app.pipeline.ingest(make_mail(sender=f"a{i}@customer.example"))
    with app.store.session() as s:
        s.execute(delete(Counter))
        s.add(Counter(name="ticket:HC", value=3))
    assert app.pipeline.ingest(make_mail(sender="new@customer.example")).key == "HC-4"


def test_counter_created_by_racing_transactions_gives_distinct_numbers(fresh_pg_url):
    store = Store(fresh_pg_url)
    store.upgrade()
    barrier = threading.Barrier(N)
    numbers: list[int] = []

    def take() -> None:
        barrier.wait()
        with store.session() as s:
            numbers.append(next_number(s, "race"))

    threads = [threading.Thread(target=take) for _ in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    store.dispose()
    assert sorted(numbers) == list(range(1, N + 1))


def test_a_conflict_that_is_not_a_duplicate_is_retried_then_quarantined(make_app, db_url, monkeypatch):
    """A uniqueness error that keeps coming back is the mail's quarantine with the reason, never a 250 drop."""
    import intake.opening

    app = make_app(dataclasses.replace(Config(), database=DatabaseSettings(url=db_url)))
    assert app.pipeline.ingest(make_mail(sender="a@customer.example")).key == "HC-1"
    calls = []

    def stuck(session, prefix):  # type: ignore[no-untyped-def]
        calls.append(prefix)
        return 1, "HC-1"  # a number that is taken: the unique index refuses it every time

    monkeypatch.setattr(intake.opening, "allocate_key", stuck)
    raw = make_mail(sender="b@customer.example")
    result = app.pipeline.ingest(raw)
    assert result.action == "quarantined" and "uniqueness conflict not resolved after 3 attempts" in result.detail
    assert len(calls) == 3
    with app.store.read() as s:
        [item] = s.scalars(select(QuarantineItem)).all()
        assert item.raw == raw and "uniqueness conflict" in item.reason
        assert s.scalar(select(func.count()).where(Message.direction == "in")) == 1  # only the first mail


def test_a_conflict_that_passes_is_stored_on_the_retry(make_app, db_url, monkeypatch):
    import intake.opening

    app = make_app(dataclasses.replace(Config(), database=DatabaseSettings(url=db_url)))
    assert app.pipeline.ingest(make_mail(sender="a@customer.example")).key == "HC-1"
    real = intake.opening.allocate_key
    calls = []

    def once_stale(session, prefix):  # type: ignore[no-untyped-def]
        calls.append(prefix)
        return (1, "HC-1") if len(calls) == 1 else real(session, prefix)

    monkeypatch.setattr(intake.opening, "allocate_key", once_stale)
    result = app.pipeline.ingest(make_mail(sender="b@customer.example"))
    assert (result.action, result.key) == ("created", "HC-2")


def test_a_true_concurrent_duplicate_is_still_a_duplicate(make_app, db_url, monkeypatch):
    """The same Message-ID stored by another instance between the dedup look and the insert."""
    import intake.pipeline

    app = make_app(dataclasses.replace(Config(), database=DatabaseSettings(url=db_url)))
    raw = make_mail(message_id="same@customer.example")
    assert app.pipeline.ingest(raw).action == "created"
    # Blind the dedup stage, as if the other instance committed after we looked.
    monkeypatch.setattr(intake.pipeline, "find_duplicate", lambda session, parsed: None)
    monkeypatch.setattr(intake.pipeline.KnownMessages, "may_contain", lambda self, parsed: False)
    result = app.pipeline.ingest(raw)
    assert (result.action, result.detail) == ("duplicate", "stored concurrently")
