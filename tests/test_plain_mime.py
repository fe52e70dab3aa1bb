"""The plain-ASCII fast path for outgoing mail (notifier.plain_mime) means what the email API means.

Each case is built both ways with the same random draw (the multipart boundary); both are
parsed and every header and every part compared, and for the plain path the bytes too when
no part is quoted-printable (binascii breaks its lines at 76, the email package at 78).
Anything the fast path cannot write as plain text falls back to ``build_mime``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from mailkit import make_mail, parse
from sqlalchemy import select

from notifier.mime import OutgoingAttachment, OutgoingMail, as_smtp_bytes, build_mime
from notifier.plain_mime import plain_bytes, smtp_bytes
from tickets.models import Message, OutboxItem

WHEN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SENDER = {"sender_address": "support@example.com", "sender_name": "Hypercare Support (CRM)",
          "message_id": "hc.ack.0123456789abcdef@example.com", "date": WHEN}
HTML = ('<p style="font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222;">Hello Ana,</p>\n'
        + "<p>" + "a long line of text " * 12 + "</p>\n")


def both(mail: OutgoingMail, seed: int = 7) -> tuple[bytes | None, bytes]:
    random.seed(seed)
    fast = plain_bytes(mail, **SENDER)
    random.seed(seed)
    return fast, as_smtp_bytes(build_mime(mail, **SENDER))


def same_meaning(a: bytes, b: bytes) -> None:
    one, two = parse(a), parse(b)
    assert [(k, str(v)) for k, v in one.items()] == [(k, str(v)) for k, v in two.items()]
    parts_one, parts_two = list(one.walk()), list(two.walk())
    assert len(parts_one) == len(parts_two)
    for x, y in zip(parts_one, parts_two, strict=True):
        assert [(k, str(v)) for k, v in x.items()] == [(k, str(v)) for k, v in y.items()]
        if not x.is_multipart():
            assert x.get_content() == y.get_content()


@pytest.mark.parametrize("mail", [
    OutgoingMail(kind="ack", to=["ana@customer.example"], subject="[HC-12] Report export broken (3)",
                 text="Hello Ana,\n\nwe have received your request.\n", html=HTML,
                 in_reply_to="m1@customer.example", references=["m1@customer.example"]),
    OutgoingMail(kind="ack", to=["ana@customer.example"], subject="[HC-13] Grüße: export", text="x\n"),
    OutgoingMail(kind="ack", to=["ana@customer.example"], subject="plain", text="Grüße aus Köln\n" + "é" * 100,
                 html="<p>é</p>\n"),
    OutgoingMail(kind="ack", to=["a@customer.example", "b@customer.example"], subject="two", text="t\n",
                 in_reply_to="x@y", references=["r1@y", "r2@y"]),
    OutgoingMail(kind="ack", to=["ana@customer.example"], subject="S" * 200, text="long subject\n"),
    OutgoingMail(kind="ack", to=["ana@customer.example"], subject="=?utf-8?q?caf=C3=A9?=", text="encoded\n"),
    OutgoingMail(kind="ack", to=["ana@customer.example"], subject="cr\r\nBcc: evil@x.example\x00", text="x\n"),
    OutgoingMail(kind="ack", to=["ana@customer.example"], subject="refs", text="x\n",
                 references=[f"r{i}@customer.example" for i in range(1000)]),
    OutgoingMail(kind="answer", to=["ana@customer.example"], subject="with file", text="x\n", reply_to="s@example.com",
                 attachments=[OutgoingAttachment("a.png", "image/png", b"\x89PNG")]),
], ids=["ack", "utf8-subject", "utf8-body", "two-recipients", "folded-subject", "encoded-word", "crlf-nul",
        "thousand-references", "attachment"])
def test_fast_path_means_the_same_as_the_email_api(mail: OutgoingMail) -> None:
    fast, slow = both(mail)
    random.seed(7)
    sent, subject = smtp_bytes(mail, **SENDER)
    same_meaning(sent, slow)
    assert subject == str(parse(slow)["Subject"])
    if fast is not None:
        same_meaning(fast, slow)
        if b"quoted-printable" not in slow:
            assert fast == slow  # same bytes, not only the same meaning (qp: soft breaks at 76, not 78)
        assert b"\r\n" in fast and b"\n" not in fast.replace(b"\r\n", b"")


def test_only_plain_short_headers_take_the_fast_path() -> None:
    ok = OutgoingMail(kind="ack", to=["ana@customer.example"], subject="[HC-1] plain", text="x\n", html=HTML)
    assert plain_bytes(ok, **SENDER) is not None
    for subject in ("Grüße", "S" * 200, "=?utf-8?q?x?=", "a\x00b"):
        assert plain_bytes(OutgoingMail(kind="ack", to=["a@b.example"], subject=subject, text="x\n"), **SENDER) is None
    assert plain_bytes(OutgoingMail(kind="ack", to=["a b@c.example"], subject="s", text="x\n"), **SENDER) is None


def test_an_acknowledgement_is_stored_once(make_app):
    app = make_app()
    result = app.pipeline.ingest(make_mail(message_id="once@customer.example", subject="Report export broken",
                                           body="The export button does nothing."))
    assert result.action == "created"
    with app.store.read() as s:
        item = s.scalars(select(OutboxItem)).one()
        outbound = s.scalars(select(Message).where(Message.direction == "out")).one()
        assert outbound.message_id == item.message_id and outbound.raw == b""  # the bytes live in the outbox
        sent = parse(item.mime)
        assert sent["Message-ID"] == f"<{item.message_id}>" and sent["In-Reply-To"] == "<once@customer.example>"
        assert "[HC-1]" in sent["Subject"] and sent.get_body(("plain",)).get_content().startswith("Hello")
