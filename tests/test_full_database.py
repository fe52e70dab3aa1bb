"""A full database disk is "retry later" (451 / exit 75 / back off), never a quarantine or a dead mail.

SQLite that meets a full disk (SQLITE_FULL) rolls the whole transaction back by itself.  The SAVEPOINT of
the mail (or the escalation) being stored is then gone, and its ``ROLLBACK TO`` failed with "no such
savepoint", which replaced the real error: the operator read "no such savepoint", and the SLA sweep went
on to the next ticket outside any transaction, reporting one such error per ticket (exit 1, not 75) and
committing some later escalations on their own.

Real SQLite, really full: ``PRAGMA max_page_count`` on every connection of the service caps the file at
its current size plus a few pages; SQLite answers exactly as on a full disk ("database or disk is full").
"""

from __future__ import annotations

import smtplib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from desk_kit import P2_MAIL, desk_config, report
from mailkit import free_port, make_mail
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from config import SmtpInSettings
from intake.pipeline import IngestUnavailable, RawMail
from intake.receive.smtp import SmtpReceiver
from tickets.models import Escalation, Message, OutboxItem, QuarantineItem, Ticket

FULL = "database or disk is full"


@contextmanager
def full_database(app, spare_pages: int) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Every connection of *app*'s store may grow the file by *spare_pages* pages, no more."""
    engine = app.store.engine
    with engine.connect() as connection:
        limit = connection.exec_driver_sql("PRAGMA page_count").scalar() + spare_pages

    def cap(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute(f"PRAGMA max_page_count = {limit}")

    event.listen(engine, "connect", cap)
    engine.dispose()  # the pooled connections were opened without the cap
    try:
        yield
    finally:
        event.remove(engine, "connect", cap)
        engine.dispose()


def _counts(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        counts = {model.__name__: s.scalar(select(func.count()).select_from(model))
                  for model in (Ticket, Message, QuarantineItem, OutboxItem, Escalation)}
        counts["dead"] = s.scalar(select(func.count()).select_from(OutboxItem).where(OutboxItem.status == "dead"))
    return counts


def _mails(kind: str, count: int) -> list[RawMail]:
    """``new``: plain first mails (the batched write path); ``replies``: mail on existing tickets and
    first mails of one sender in turn (the per-message path, one SAVEPOINT each)."""
    mails = []
    for i in range(count):
        body = f"Line {i} of a long description of what went wrong with the export.\n" * 40
        if kind == "replies" and i % 2:
            raw = make_mail(subject=f"Re: [HC-{i % 3 + 1}] earlier problem {i % 3}", body=body,
                            sender=f"early{i % 3}@customer.example", message_id=f"reply{i}@customer.example")
        elif kind == "replies":
            raw = make_mail(subject=f"another problem {i}", body=body, sender="busy@customer.example",
                            message_id=f"busy{i}@customer.example")
        else:
            raw = make_mail(subject=f"export problem {i}", body=body, sender=f"user{i}@customer.example",
                            message_id=f"new{i}@customer.example")
        mails.append(RawMail(raw, "imap"))
    return mails


@pytest.mark.parametrize("kind", ["new", "replies"])
@pytest.mark.parametrize("spare_pages", [0, 3, 12, 40])
def test_a_full_database_mid_batch_is_retry_later_with_the_real_reason(make_app, tmp_path, kind, spare_pages):
    app = make_app()
    for i in range(3):
        report(app, (f"earlier problem {i}", "The report stops at 80 %."), sender=f"early{i}@customer.example")
    before = _counts(app)
    mails = _mails(kind, 40)
    with full_database(app, spare_pages), pytest.raises(IngestUnavailable) as raised:
        app.pipeline.ingest_batch(mails)
    assert FULL in str(raised.value) and "savepoint" not in str(raised.value)
    assert _counts(app) == before  # the whole batch rolled back: nothing half-stored, nothing quarantined
    # Space again: the same batch (the mailbox still holds it) is stored, each mail once.
    outcomes = Counter(result.action for result in app.pipeline.ingest_batch(mails))
    if kind == "new":
        assert outcomes == {"created": 40}, outcomes
    else:  # replies thread; the busy sender's mails past the flood limit join their ticket
        assert set(outcomes) == {"created", "threaded"} and outcomes.total() == 40, outcomes
    after = _counts(app)
    assert after["Message"] >= before["Message"] + 40 and after["QuarantineItem"] == 0 and after["dead"] == 0


def test_a_full_database_answers_451_and_the_retried_mail_is_stored(make_app):
    app = make_app()
    receiver = SmtpReceiver(app.pipeline, app.config.support, SmtpInSettings(host="127.0.0.1", port=free_port()))
    receiver.start()
    try:
        body = "A long description of what went wrong with the export.\n" * 200
        mail = make_mail(body=body, message_id="retried@customer.example").replace(b"\n", b"\r\n")
        with full_database(app, 0), smtplib.SMTP("127.0.0.1", receiver.port) as smtp, \
                pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail("maria@customer.example", ["support@localhost"], mail)
        assert refused.value.smtp_code == 451
        assert _counts(app)["QuarantineItem"] == 0 and _counts(app)["Message"] == 0
        with smtplib.SMTP("127.0.0.1", receiver.port) as smtp:  # the sending MTA retries later
            assert smtp.sendmail("maria@customer.example", ["support@localhost"], mail) == {}
    finally:
        receiver.stop()
    counts = _counts(app)
    assert (counts["Ticket"], counts["QuarantineItem"], counts["dead"]) == (1, 0, 0)


@pytest.mark.parametrize("spare_pages", [0, 4])
def test_a_full_database_stops_the_sla_sweep_with_the_real_reason(make_app, clock, tmp_path, spare_pages):
    app = make_app(desk_config(tmp_path, incidents=False))
    keys = [report(app, P2_MAIL, sender=f"user{i}@customer.example") for i in range(30)]
    clock.advance(hours=2)  # every ticket is due for its first escalation
    before = _counts(app)
    with full_database(app, spare_pages), pytest.raises(OperationalError, match=FULL):
        app.escalator.sweep()  # OperationalError: service.main says "try again later", exit 75
    assert _counts(app) == before  # no escalation recorded on its own after the transaction was gone
    swept = app.escalator.sweep()
    assert sorted(e.key for e in swept.escalated) == sorted(keys) and not swept.errors
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Escalation)) == len(keys)
