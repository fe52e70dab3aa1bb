"""Floods limit acknowledgements, never hearing (issue #12).

Before: past 10 tickets per sender per hour every further mail of that address was stored as
"ignored" before threading - forged mails "From: ada@" made Ada's signed #ack vanish, a key user's
reply on his own ticket was dropped, and a genuine burst of 500 mails gave 10 tickets and 490 drops.
"""

from __future__ import annotations

import base64
import dataclasses

from desk_kit import ADA, OLGA, REPORTER, desk_config, team_reply, ticket
from mailkit import make_mail
from sqlalchemy import func, select

from config import IntakeSettings
from intake.pipeline import RawMail
from tickets.models import Message, OutboxItem, Ticket


def flood_app(make_app, tmp_path, db_url, limit: int = 10):  # type: ignore[no-untyped-def]
    config = desk_config(tmp_path, db_url=db_url)
    return make_app(config=dataclasses.replace(config, intake=IntakeSettings(flood_per_hour=limit)))


def outbox(app, kind: str) -> list[OutboxItem]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return list(s.scalars(select(OutboxItem).where(OutboxItem.kind == kind)))


def test_a_genuine_burst_is_grouped_not_dropped_and_the_team_is_alerted_once(make_app, tmp_path, db_url):
    app = flood_app(make_app, tmp_path, db_url)
    burst = [RawMail(make_mail(subject=f"Order {i} cannot be saved", body=f"Order {i} fails with an error.",
                               message_id=f"burst{i}@customer.example")) for i in range(40)]
    results = app.pipeline.ingest_batch(burst[:25]) + app.pipeline.ingest_batch(burst[25:])
    assert [r.action for r in results] == ["created"] * 10 + ["threaded"] * 30
    assert {r.key for r in results[10:]} == {"HC-10"}  # the sender's latest open ticket
    assert all("not acknowledged" in r.detail for r in results[10:])
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 10
        kept = s.scalar(select(func.count()).select_from(Message).where(
            Message.direction == "in", Message.disposition == "grouped"))
        assert kept == 30  # every mail a person wrote is on a ticket
    assert len(outbox(app, "ack")) + len(outbox(app, "ack_known")) == 10  # same problem: one incident (issue 14)
    alerts = outbox(app, "flood")  # once per flood: one copy to each of the role's members and on-call
    told = [r for alert in alerts for r in alert.recipients]
    assert OLGA.email in told and len(told) == len(set(told)) and all("Mail flood" in a.subject for a in alerts)
    assert any(e.kind == "flood_grouped" for e in ticket(app, "HC-10").events)


def test_a_machine_loop_is_still_cut_off(make_app, tmp_path, db_url):
    app = flood_app(make_app, tmp_path, db_url, limit=5)
    loop = [RawMail(make_mail(subject="Re: Order confirmation", body="Your order was received.",
                              message_id=f"loop{i}@shop.example", sender="robot@shop.example")) for i in range(12)]
    actions = [r.action for r in app.pipeline.ingest_batch(loop)]
    assert actions == ["created"] * 5 + ["ignored"] * 7
    with app.store.read() as s:
        rules = set(s.scalars(select(Message.rule).where(Message.disposition == "ignored")))
    assert rules == {"loop"}


def test_forged_mail_from_a_team_member_cannot_silence_her_signed_reply(make_app, tmp_path, db_url):
    app = flood_app(make_app, tmp_path, db_url, limit=3)
    first = app.pipeline.ingest(make_mail(subject="CRM login broken", body="Cannot log in.", sender=REPORTER,
                                          message_id="real@customer.example"))
    forged = [RawMail(make_mail(subject=f"Spam {i}", body="buy now", sender=ADA.email,
                                message_id=f"forged{i}@evil.example")) for i in range(6)]
    assert [r.action for r in app.pipeline.ingest_batch(forged)] == ["created"] * 3 + ["threaded"] * 3
    # Ada's genuine signed reply (threaded by its token) still acts on the reporter's ticket.
    result = team_reply(app, first.key, "#ack")
    assert result.key == first.key and ticket(app, first.key).status == "acknowledged"


def test_the_reporters_reply_on_his_own_ticket_still_threads_during_his_flood(make_app, tmp_path, db_url):
    app = flood_app(make_app, tmp_path, db_url, limit=2)
    opened = [app.pipeline.ingest(make_mail(subject=f"Issue {i}", body="It fails.",
                                            message_id=f"r{i}@customer.example")) for i in range(3)]
    assert [r.action for r in opened] == ["created", "created", "threaded"]
    reply = app.pipeline.ingest(make_mail(subject=f"Re: [{opened[0].key}] Issue 0", body="More details: error 42.",
                                          in_reply_to="r0@customer.example", message_id="reply@customer.example"))
    assert reply.action == "threaded" and reply.key == opened[0].key and "flood" not in reply.detail


def test_a_p1_from_a_flooding_sender_still_pages_the_on_call_once(make_app, tmp_path, db_url):
    """Issue 14: grouping kept a flooding key user's P1 on his latest ticket without a page."""
    from desk_kit import P1_MAIL, PAM

    app = flood_app(make_app, tmp_path, db_url, limit=3)
    burst = [RawMail(make_mail(subject=f"Report {i} layout", body=f"The report {i} layout is off by one column.",
                               message_id=f"b{i}@customer.example")) for i in range(5)]
    assert [r.action for r in app.pipeline.ingest_batch(burst)] == ["created"] * 3 + ["threaded"] * 2
    outage = app.pipeline.ingest(make_mail(subject=P1_MAIL[0], body=P1_MAIL[1], message_id="p1@customer.example"))
    assert outage.action == "created" and outage.key == "HC-4", outage  # its own ticket, not grouped into HC-3
    p1 = ticket(app, outage.key)
    assert p1.severity == "P1" and "flood_opened" in [e.kind for e in p1.events]
    pages = [i for i in outbox(app, "escalation") if i.ticket_id == p1.id]
    told = {r for page in pages for r in page.recipients}
    assert OLGA.email in told and PAM.email in told  # on-call and the project manager: paged at once
    with app.store.read() as s:  # the flood rule still holds for the reporter: no acknowledgement
        acks = s.scalars(select(OutboxItem).where(OutboxItem.ticket_id == p1.id,
                                                  OutboxItem.kind.in_(("ack", "ack_known")))).all()
    assert acks == []
    # A second P1 (even with CR/LF and NUL in its subject) joins the open P1 ticket: one page per flood, not per mail.
    hostile = "=?utf-8?b?" + base64.b64encode(b"CRM is down\r\nBcc: x@evil.example\x00 again").decode() + "?="
    again = app.pipeline.ingest(make_mail(subject=hostile,
                                          body=P1_MAIL[1] + " Still!", message_id="p1b@customer.example"))
    assert again.action == "threaded" and again.key == outage.key and "not acknowledged" in again.detail
    assert len([i for i in outbox(app, "escalation") if i.ticket_id == p1.id]) == len(pages)
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 4
