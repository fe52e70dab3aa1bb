"""The ingest pipeline end to end on SQLite and PostgreSQL: store, dedup, thread, quarantine."""

from __future__ import annotations

from mailkit import make_mail, parse
from sqlalchemy import func, select

from tickets.models import Event, Message, OutboxItem, QuarantineItem, Ticket


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_new_mail_opens_ticket_with_ack_in_one_transaction(make_app, db_url):
    app = make_app(db=db_url)
    result = app.pipeline.ingest(make_mail(message_id="m1@customer.example"))
    assert (result.action, result.key) == ("created", "HC-1")
    with app.store.session() as s:
        ticket = s.scalar(select(Ticket))
        assert ticket.key == "HC-1" and ticket.reporter == "maria@customer.example"
        assert ticket.severity == "P1"  # "CRM is down ... nobody can log in": an outage
        assert ticket.classification and "outage" in [r["name"] for r in ticket.classification]
        assert ticket.response_due is not None and ticket.response_due > ticket.created_at
        assert [e.kind for e in ticket.events] == ["created"]
        ack = s.scalar(select(OutboxItem))
        assert ack.kind == "ack" and ack.recipients == ["maria@customer.example"] and ack.status == "pending"
        assert ack.idempotency_key == "ack:m1@customer.example"


def test_same_message_id_twice_is_stored_and_acknowledged_once(make_app, db_url):
    app = make_app(db=db_url)
    raw = make_mail(message_id="dup@customer.example")
    first, second = app.pipeline.ingest(raw), app.pipeline.ingest(raw)
    assert first.action == "created" and second.action == "duplicate" and second.key == "HC-1"
    assert _count(app, Ticket) == 1 and _count(app, OutboxItem) == 1


def test_duplicate_within_one_batch_is_absorbed(make_app, db_url):
    from intake.pipeline import RawMail

    app = make_app(db=db_url)
    raw = make_mail(message_id="batchdup@customer.example")
    results = app.pipeline.ingest_batch([RawMail(raw), RawMail(raw)])
    assert [r.action for r in results] == ["created", "duplicate"]
    assert _count(app, Ticket) == 1


def test_mail_without_message_id_dedups_by_content(make_app, db_url):
    app = make_app(db=db_url)
    raw = b"From: a@customer.example\r\nTo: support@localhost\r\nSubject: no id\r\n\r\nhello\r\n"
    assert app.pipeline.ingest(raw).action == "created"
    assert app.pipeline.ingest(raw).action == "duplicate"


def test_reply_with_tag_from_reporter_joins_ticket(make_app, db_url):
    app = make_app(db=db_url)
    app.pipeline.ingest(make_mail(message_id="orig@customer.example"))
    reply = make_mail(subject="Re: [HC-1] CRM is down", body="Still down for me.", message_id="r1@customer.example")
    result = app.pipeline.ingest(reply)
    assert (result.action, result.key) == ("threaded", "HC-1")
    assert _count(app, Ticket) == 1
    with app.store.session() as s:
        ticket = s.scalar(select(Ticket))
        assert [m.message_id for m in ticket.messages if m.direction == "in"] == [
            "orig@customer.example", "r1@customer.example"]
    assert _count(app, OutboxItem) == 1  # a reply is not acknowledged again


def test_reply_by_in_reply_to_our_acknowledgement_threads(make_app, db_url):
    app = make_app(db=db_url)
    app.pipeline.ingest(make_mail(message_id="o2@customer.example"))
    with app.store.session() as s:
        ack_id = s.scalar(select(OutboxItem.message_id))
    result = app.pipeline.ingest(make_mail(subject="Re: your ticket", in_reply_to=ack_id))
    assert (result.action, result.key) == ("threaded", "HC-1")


def test_stranger_quoting_a_tag_gets_new_linked_ticket(make_app, db_url):
    app = make_app(db=db_url)
    app.pipeline.ingest(make_mail())
    result = app.pipeline.ingest(make_mail(subject="Fw: [HC-1] CRM is down", sender="eve@other.example"))
    assert result.action == "created" and result.key == "HC-2" and "linked to HC-1" in result.detail
    with app.store.session() as s:
        first, second = s.scalars(select(Ticket).order_by(Ticket.number)).all()
        assert second.linked_ticket_id == first.id
        assert len([m for m in first.messages if m.direction == "in"]) == 1


def test_unparseable_or_failing_message_is_quarantined_not_lost(make_app, db_url, monkeypatch):
    app = make_app(db=db_url)
    pipeline = app.pipeline

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("classifier exploded")

    monkeypatch.setattr(app.opener, "open", broken)
    from intake.pipeline import RawMail

    results = pipeline.ingest_batch([RawMail(make_mail(message_id="bad@x")), RawMail(make_mail(message_id="ok@x"))])
    assert results[0].action == "quarantined" and "classifier exploded" in results[0].detail
    assert results[1].action == "quarantined"
    assert _count(app, QuarantineItem) == 2 and _count(app, Message) == 0


def test_one_bad_message_does_not_take_neighbours_down(make_app, db_url, monkeypatch):
    app = make_app(db=db_url)
    original = app.opener.open
    calls = {"n": 0}

    def flaky(session, parsed, message, now, linked=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("boom")
        return original(session, parsed, message, now, linked)

    monkeypatch.setattr(app.opener, "open", flaky)
    from intake.pipeline import RawMail

    mails = [RawMail(make_mail(message_id=f"n{i}@x", sender=f"u{i}@customer.example")) for i in range(3)]
    results = app.pipeline.ingest_batch(mails)
    assert [r.action for r in results] == ["created", "quarantined", "created"]
    assert _count(app, Ticket) == 2 and _count(app, OutboxItem) == 2


def test_auto_reply_is_recorded_but_never_acknowledged(make_app, db_url):
    app = make_app(db=db_url)
    result = app.pipeline.ingest(make_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"}))
    assert result.action == "ignored"
    assert _count(app, Ticket) == 0 and _count(app, OutboxItem) == 0
    with app.store.session() as s:
        assert s.scalar(select(Message.disposition)) == "ignored"


def test_our_own_acknowledgement_coming_back_is_ignored(make_app, db_url):
    app = make_app(db=db_url)
    app.pipeline.ingest(make_mail())
    with app.store.session() as s:
        ack = s.scalar(select(OutboxItem))
        mime = ack.mime
    result = app.pipeline.ingest(mime)
    assert result.action == "ignored"
    assert parse(mime)["Auto-Submitted"] == "auto-replied"


def test_every_change_is_an_audit_event(make_app, db_url):
    app = make_app(db=db_url)
    app.pipeline.ingest(make_mail())
    app.pipeline.ingest(make_mail(subject="Re: [HC-1] CRM is down", body="more info"))
    with app.store.session() as s:
        kinds = list(s.scalars(select(Event.kind).order_by(Event.id)))
    assert kinds == ["created", "reply"]


def test_attachments_are_recorded_and_stored_by_content(make_app, db_url, tmp_path):
    import hashlib
    from email.message import EmailMessage

    from config import Config, IntakeSettings

    app = make_app(Config(base_dir=tmp_path, intake=IntakeSettings(max_attachment_bytes=1000)))
    app = make_app(app.config, db=db_url)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@customer.example", "support@localhost", "screenshot"
    msg["Message-ID"] = "<att@x>"
    msg.set_content("see attached")
    small, big = b"PNGDATA" * 10, b"x" * 5000
    msg.add_attachment(small, maintype="image", subtype="png", filename="../../etc/Screen shot.png")
    msg.add_attachment(big, maintype="application", subtype="pdf", filename="big.pdf")
    assert app.pipeline.ingest(msg.as_bytes()).action == "created"
    from tickets.models import Attachment

    with app.store.read() as s:
        rows = {a.content_type: a for a in s.scalars(select(Attachment))}
    png, pdf = rows["image/png"], rows["application/pdf"]
    assert "/" not in png.filename and png.filename.endswith(".png") and png.stored == "file"
    assert png.sha256 == hashlib.sha256(small).hexdigest() and png.size == len(small)
    stored = tmp_path / "var" / "attachments" / png.sha256[:2] / png.sha256[2:4] / png.sha256
    assert stored.read_bytes() == small
    assert pdf.stored == "omitted" and pdf.size == 5000


def test_a_very_long_message_id_is_acknowledged(make_app, db_url):
    app = make_app(db=db_url)
    long_id = "x" * 600 + "@customer.example"
    assert app.pipeline.ingest(make_mail(message_id=long_id)).action == "created"
    assert _count(app, OutboxItem) == 1


def _dsn_for(address: str, original_id: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.customer.example\r\nTo: support@localhost\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.customer.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.example\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{original_id}>\r\n\r\n--b--\r\n"
    ).encode()


def test_a_bounce_suppresses_the_address_until_it_writes_again(make_app, db_url):
    from tickets.models import BouncingRecipient

    app = make_app(db=db_url)
    app.pipeline.ingest(make_mail(message_id="b1@x", sender="gone@customer.example"))
    assert app.outbox.flush(app.transport()).sent == 1
    with app.store.read() as s:
        ack_id = s.scalar(select(OutboxItem.message_id))
    forged = app.pipeline.ingest(_dsn_for("gone@customer.example", "b1@x"))  # not about mail we sent
    assert forged.action == "ignored"
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(BouncingRecipient)) == 0
    bounce = app.pipeline.ingest(_dsn_for("gone@customer.example", ack_id).replace(b"dsn1@", b"dsn2@"))
    assert bounce.action == "ignored" and bounce.detail.startswith("dsn")
    with app.store.read() as s:
        assert s.scalar(select(BouncingRecipient.email)) == "gone@customer.example"
    from notifier.mime import OutgoingMail
    from notifier.outbox import enqueue

    with app.store.session() as s:
        enqueue(s, OutgoingMail(kind="answer", to=["gone@customer.example"], subject="[HC-1] news", text="x"),
                key="test:after-bounce", support=app.config.support, now=app.clock.now())
    assert app.outbox.flush(app.transport()).suppressed == 1
    app.pipeline.ingest(make_mail(subject="Re: [HC-1] CRM is down", message_id="b2@x", sender="gone@customer.example",
                                  body="My mailbox works again."))
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(BouncingRecipient)) == 0
