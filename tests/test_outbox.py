"""The outbox: Maildir and SMTP transports, idempotency, crash recovery, failures."""

from __future__ import annotations

import mailbox

from mailkit import make_mail, parse
from sqlalchemy import select

from config import Config, SmtpOutSettings
from notifier.transports import MaildirTransport, SmtpTransport
from tickets.models import OutboxItem


def _relay_config(tmp_path, relay) -> Config:  # type: ignore[no-untyped-def]
    return Config(base_dir=tmp_path, smtp_out=SmtpOutSettings(host="127.0.0.1", port=relay.port, timeout=5))


def test_acknowledgement_lands_in_maildir_with_threading_headers(make_app, tmp_path):
    app = make_app()
    app.pipeline.ingest(make_mail(message_id="req1@customer.example"))
    report = app.outbox.flush(app.transport())
    assert report.sent == 1
    box = mailbox.Maildir(str(tmp_path / "var" / "outbox"), create=False)
    [raw] = [box.get_bytes(k) for k in box.iterkeys()]
    msg = parse(raw)
    assert msg["Subject"].startswith("[HC-1] ")
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Hypercare-Loop"] == "support@localhost"
    assert msg["In-Reply-To"] == "<req1@customer.example>"
    assert msg["Message-ID"].startswith("<hc.ack.") and msg["Message-ID"].endswith("@localhost>")
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "HC-1" in text and "First response" in text and "reply" in text.lower()
    assert "<strong>HC-1</strong>" in html


def test_ack_states_severity_promise_and_role(make_app):
    app = make_app()
    app.pipeline.ingest(make_mail(subject="Typo on the account page",
                                  body="The label says Adress instead of Address. Cosmetic, workaround exists."))
    with app.store.session() as s:
        mime = s.scalar(select(OutboxItem)).mime
    text = parse(mime).get_body(("plain",)).get_content()
    assert "P3 Minor" in text and "1 business day" in text and "CRM admin" in text, text


def test_html_part_escapes_what_the_user_wrote(make_app):
    app = make_app()
    app.pipeline.ingest(make_mail(subject="<script>alert(1)</script> broken"))
    with app.store.session() as s:
        mime = s.scalar(select(OutboxItem)).mime
    html = parse(mime).get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_smtp_transport_delivers_to_real_relay_over_one_connection(make_app, tmp_path, relay):
    app = make_app(_relay_config(tmp_path, relay))
    for i in range(3):
        app.pipeline.ingest(make_mail(message_id=f"s{i}@x", sender=f"user{i}@customer.example"))
    report = app.outbox.flush(app.transport())
    assert report.sent == 3
    assert sorted(d.recipients[0] for d in relay.deliveries) == [f"user{i}@customer.example" for i in range(3)]
    assert relay.handler.connections == 1
    assert all(d.sender == "support@localhost" for d in relay.deliveries)


def test_crash_between_enqueue_and_send_loses_nothing_and_restart_sends_once(make_app, tmp_path, relay, clock):
    app = make_app(_relay_config(tmp_path, relay))
    app.pipeline.ingest(make_mail())
    claimed = app.outbox.claim_due(10)  # the worker claims, then "crashes" before sending
    assert len(claimed) == 1
    assert app.outbox.flush(app.transport()).sent == 0  # still claimed by the dead worker
    clock.advance(minutes=6)  # the claim expires
    restarted = make_app(_relay_config(tmp_path, relay))
    assert restarted.outbox.flush(restarted.transport()).sent == 1
    assert restarted.outbox.flush(restarted.transport()).sent == 0
    assert len(relay.deliveries) == 1


def test_temporary_failure_retries_later_permanent_goes_dead(make_app, tmp_path, relay, clock):
    app = make_app(_relay_config(tmp_path, relay))
    app.pipeline.ingest(make_mail(message_id="t@x", sender="t@customer.example"))
    app.pipeline.ingest(make_mail(message_id="p@x", sender="p@customer.example"))
    relay.handler.faults.extend(["451 4.3.0 try later", "550 5.1.1 no such user"])
    report = app.outbox.flush(app.transport())
    assert (report.sent, report.retried, report.dead) == (0, 1, 1)
    with app.store.session() as s:
        items = {i.recipients[0]: i for i in s.scalars(select(OutboxItem))}
    assert items["t@customer.example"].status == "pending" and "451" in items["t@customer.example"].last_error
    assert items["p@customer.example"].status == "dead" and "550" in items["p@customer.example"].last_error
    assert app.outbox.flush(app.transport()).sent == 0  # not due yet: backoff
    clock.advance(hours=1)
    assert app.outbox.flush(app.transport()).sent == 1
    assert [d.recipients for d in relay.deliveries] == [["t@customer.example"]]


def test_relay_down_keeps_mail_pending(make_app, tmp_path):
    from mailkit import free_port

    cfg = Config(base_dir=tmp_path, smtp_out=SmtpOutSettings(host="127.0.0.1", port=free_port(), timeout=2))
    app = make_app(cfg)
    app.pipeline.ingest(make_mail())
    report = app.outbox.flush(app.transport())
    assert report.retried == 1 and report.sent == 0
    with app.store.session() as s:
        assert s.scalar(select(OutboxItem.status)) == "pending"


def test_transports_share_one_interface(tmp_path, relay):
    data = make_mail()
    maildir = MaildirTransport(tmp_path / "deep" / "md")
    smtp = SmtpTransport(SmtpOutSettings(host="127.0.0.1", port=relay.port))
    for transport in (maildir, smtp):
        transport.open()
        transport.send("support@localhost", ["a@customer.example"], data)
        transport.close()
    assert len(mailbox.Maildir(str(tmp_path / "deep" / "md"))) == 1 and len(relay.deliveries) == 1


def test_header_injection_in_subject_is_neutralised(make_app, tmp_path):
    app = make_app()
    app.pipeline.ingest(make_mail(subject="Help"))
    from notifier.mime import OutgoingMail, build_mime

    mail = OutgoingMail(kind="ack", to=["a@b.example"], subject="Hi\r\nBcc: victim@evil.example", text="x")
    msg = build_mime(mail, sender_address="support@localhost", sender_name="Desk\nBcc: x@evil.example",
                     message_id="hc.t@localhost", date=app.clock.now())
    raw = msg.as_bytes()
    assert b"\nBcc:" not in raw and parse(raw)["Bcc"] is None


def test_smtp_transport_logs_in_with_the_password_from_the_environment(make_app, tmp_path, clock):
    import io

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
    from mailkit import CapturingHandler, free_port

    from app import App

    seen: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")

    handler, port = CapturingHandler(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, decode_data=False,
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        cfg = Config(base_dir=tmp_path, smtp_out=SmtpOutSettings(
            host="127.0.0.1", port=port, username="desk", password_env="DESK_SMTP_PW", timeout=5))
        app = App(cfg, clock, out=io.StringIO(), err=io.StringIO(), environ={"DESK_SMTP_PW": "s3cret"})
        app.pipeline.ingest(make_mail())
        assert app.outbox.flush(app.transport()).sent == 1
        wrong = App(cfg, clock, out=io.StringIO(), err=io.StringIO(), environ={"DESK_SMTP_PW": "nope"})
        wrong.pipeline.ingest(make_mail(message_id="second@x", sender="b@customer.example"))
        report = wrong.outbox.flush(wrong.transport())
        assert report.sent == 0
        app.store.dispose()
        wrong.store.dispose()
    finally:
        controller.stop()
    assert seen == [(b"desk", b"s3cret"), (b"desk", b"nope")] and len(handler.deliveries) == 1


def test_maildir_batch_cut_short_before_its_record_is_not_delivered_twice(make_app, tmp_path, clock, monkeypatch):
    """The Maildir takes a claimed batch at once and one statement records it; a crash between the two
    leaves the files in new/ (one already read into cur/ by a mail client) and the rows unrecorded:
    the resend after the claim ran out finds every file by its name and writes none again."""
    app = make_app()
    for i in range(3):
        app.pipeline.ingest(make_mail(message_id=f"b{i}@x", sender=f"b{i}@customer.example", subject=f"Broken {i}"))
    real = MaildirTransport.deliver
    calls: list[int] = []

    def crash_after_delivery(self, mails, **kw):  # type: ignore[no-untyped-def]
        calls.append(len(mails))
        real(self, mails, **kw)
        raise KeyboardInterrupt  # the process dies before the batch is recorded

    monkeypatch.setattr(MaildirTransport, "deliver", crash_after_delivery)
    try:
        app.outbox.flush(app.transport())
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    folder = tmp_path / "var" / "outbox"
    delivered = sorted(p.name for p in (folder / "new").iterdir())
    assert calls == [3] and len(delivered) == 3 and not list((folder / "tmp").iterdir())
    (folder / "new" / delivered[0]).rename(folder / "cur" / f"{delivered[0]}:2,S")  # a client read one
    clock.advance(minutes=6)  # the claim runs out
    restarted = make_app()
    assert restarted.outbox.flush(restarted.transport()).sent == 3
    box = mailbox.Maildir(str(folder), create=False)
    assert sorted(parse(box.get_bytes(k))["To"] for k in box.iterkeys()) == [f"b{i}@customer.example" for i in range(3)]
    with restarted.store.read() as s:
        assert [(i.status, i.attempts) for i in s.scalars(select(OutboxItem))] == [("sent", 1)] * 3


def test_maildir_batch_one_unwritable_file_retries_alone(make_app, tmp_path, monkeypatch):
    import errno
    import os

    app = make_app()
    for i in range(3):
        app.pipeline.ingest(make_mail(message_id=f"e{i}@x", sender=f"e{i}@customer.example", subject=f"Broken {i}"))
    real_write = MaildirTransport._write_file
    seen: list[str] = []

    def flaky(path, data):  # type: ignore[no-untyped-def]
        seen.append(path.name)
        if len(seen) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_write(path, data)

    monkeypatch.setattr(MaildirTransport, "_write_file", staticmethod(flaky))
    report = app.outbox.flush(app.transport())
    assert (report.sent, report.retried, report.dead) == (2, 1, 0)
    with app.store.read() as s:
        states = sorted((i.status, i.attempts) for i in s.scalars(select(OutboxItem)))
    assert states == [("pending", 1), ("sent", 1), ("sent", 1)]
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == 2


def test_a_flush_takes_what_was_due_when_it_began_not_what_arrives_meanwhile(make_app, clock, monkeypatch):
    """Under a steady stream of new tickets a flush once went on forever in batches of a few mails, each
    paying its claim and its record; what arrives meanwhile waits for the next beat."""
    app = make_app()
    app.pipeline.ingest(make_mail(message_id="first@x", sender="first@customer.example", subject="Broken one"))
    real = MaildirTransport.deliver

    def meanwhile(self, mails, **kw):  # type: ignore[no-untyped-def]
        if not meanwhile.done:  # type: ignore[attr-defined]
            meanwhile.done = True  # type: ignore[attr-defined]
            clock.advance(seconds=1)
            app.pipeline.ingest(make_mail(message_id="later@x", sender="later@customer.example", subject="Broken two"))
        return real(self, mails, **kw)

    meanwhile.done = False  # type: ignore[attr-defined]
    monkeypatch.setattr(MaildirTransport, "deliver", meanwhile)
    assert app.outbox.flush(app.transport()).sent == 1
    assert app.outbox.flush(app.transport()).sent == 1  # the next beat
