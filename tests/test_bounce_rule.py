"""Bounces count only when they are ours, and the team and stakeholders are never silently suppressed.

Issue #12: one stranger's mail with ``Subject: Undeliverable`` and ``X-Failed-Recipients`` naming the
team put them on the bouncing list, and the next P1 page to them was marked suppressed without a word.
"""

from __future__ import annotations

import dataclasses
import io
import json
import mailbox

from desk_kit import OLGA, P1_MAIL, SUPPORT, desk_config, report
from mailkit import make_mail
from sqlalchemy import func, select

from config import StakeholderSettings
from dashboard.status import cmd_status
from dashboard.summary import DashboardContext, build_summary
from notifier.digests import for_app
from tickets.models import BouncingRecipient, OutboxItem

CIO = "cio@example.com"


def bounce(failed: str, *, our_id: str | None, mid: str) -> bytes:
    """A DSN from the customer's mail system; it quotes the original's headers when *our_id* is given."""
    original = f"Message-ID: <{our_id}>\r\nFrom: {SUPPORT}\r\n" if our_id else "Subject: something\r\n"
    return (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: support@example.com\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <{mid}>\r\nMIME-Version: 1.0\r\n"
        f"X-Failed-Recipients: {failed}, {CIO}\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n--b--\r\n"
    ).encode()


def bouncing(app) -> list[str]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return sorted(s.scalars(select(BouncingRecipient.email)))


def pages_to(app, address: str) -> list[OutboxItem]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        rows = list(s.scalars(select(OutboxItem).where(OutboxItem.kind == "escalation").order_by(OutboxItem.id)))
    return [r for r in rows if address in r.recipients]


def test_forged_bounce_counts_against_nobody_and_a_real_one_never_silences_the_team(make_app, tmp_path, db_url):
    config = dataclasses.replace(desk_config(tmp_path, db_url=db_url),
                                 stakeholders=StakeholderSettings(daily=(CIO,)))
    app = make_app(config=config)
    report(app, P1_MAIL, message_id="p1-first@customer.example")
    assert app.outbox.flush(app.transport()).sent >= 2  # acknowledgement + the P1 page
    [page] = pages_to(app, OLGA.email)

    # A stranger's "Undeliverable" naming Olga and the CIO, without any mail of ours in it: nobody bounces.
    forged = app.pipeline.ingest(bounce(OLGA.email, our_id=None, mid="forged@evil.example"))
    assert forged.action == "ignored" and bouncing(app) == []
    # Quoting a Message-ID we never sent (our format, made up): still nobody.
    fake = app.pipeline.ingest(bounce(OLGA.email, our_id="hc.p1-new.0000@example.com", mid="fake@evil.example"))
    assert fake.action == "ignored" and bouncing(app) == []

    # A real bounce of the page: Olga's address is recorded (the CIO was not a recipient of that page).
    real = app.pipeline.ingest(bounce(OLGA.email, our_id=page.message_id, mid="real@mx.example.com"))
    assert real.action == "ignored" and bouncing(app) == [OLGA.email]

    # The next P1 page to Olga is still attempted, not suppressed.
    report(app, ("CRM down again", "Nobody can log in, all users blocked, production down."),
           sender="other@customer.example", message_id="p1-second@customer.example")
    flushed = app.outbox.flush(app.transport())
    assert flushed.suppressed == 0
    second = pages_to(app, OLGA.email)[-1]
    assert second.status == "sent" and second.suppressed == []
    box = mailbox.Maildir(str(tmp_path / "var" / "outbox"), create=False)
    assert sum(second.message_id in box.get_bytes(k).decode(errors="replace") for k in box.iterkeys()) == 1

    # ... and her bounce is shown: status (exit 1, NEEDS ATTENTION), the dashboard, the next daily digest.
    app.out = io.StringIO()
    assert cmd_status(app, type("Args", (), {"json": False})()) == 1
    assert f"{OLGA.email} (team): 1 bounce(s)" in app.out.getvalue()
    app.out = io.StringIO()
    cmd_status(app, type("Args", (), {"json": True})())
    assert [p["email"] for p in json.loads(app.out.getvalue())["bouncing"]] == [OLGA.email]
    with app.store.read() as s:
        summary = build_summary(s, DashboardContext(app.config, app.sla, app.go_live, app.clock.now()))
    assert [p["email"] for p in summary["bouncing_people"]] == [OLGA.email]
    digest = for_app(app).render("status_daily", app.clock.now())
    assert OLGA.email in digest.text and "still sent" in digest.text and OLGA.email in digest.html


def test_a_customer_address_that_really_bounced_is_still_suppressed(make_app, tmp_path, db_url):
    app = make_app(config=desk_config(tmp_path, db_url=db_url))
    app.pipeline.ingest(make_mail(message_id="c1@customer.example", sender="gone@customer.example", to=SUPPORT,
                                  subject="Typo on a label", body="There is a typo."))
    app.outbox.flush(app.transport())
    with app.store.read() as s:
        ack_id = s.scalar(select(OutboxItem.message_id).where(OutboxItem.kind == "ack"))
    app.pipeline.ingest(bounce("gone@customer.example", our_id=ack_id, mid="dsn@mx.example.com"))
    assert bouncing(app) == ["gone@customer.example"]
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(BouncingRecipient)) == 1
