"""Page storms coalesce (issue #12): rotating From addresses produced 20 immediate P1 pages in one second."""

from __future__ import annotations

from email import message_from_bytes, policy

from desk_kit import OLGA, P1_MAIL, desk_config, report
from sqlalchemy import select
from sqlalchemy.orm import undefer

from tickets.models import Escalation, OutboxItem


def pages_to(app, address: str) -> list[OutboxItem]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        rows = list(s.scalars(select(OutboxItem).options(undefer(OutboxItem.mime))
                              .where(OutboxItem.kind == "escalation").order_by(OutboxItem.id)))
    return [r for r in rows if address in r.recipients]


def test_twenty_p1_pages_in_a_second_become_five_pages_and_one_listing(make_app, tmp_path, clock, db_url):
    app = make_app(config=desk_config(tmp_path, db_url=db_url, incidents=False))  # one P1 each, not an incident
    keys = [report(app, P1_MAIL, sender=f"user{i}@customer{i}.example", message_id=f"storm{i}@x.example")
            for i in range(20)]
    assert len(pages_to(app, OLGA.email)) == 5  # [notifier] page_storm_pages (default 5)
    assert app.escalator.storm.coalesce() == "3 storm page(s) for 15 held ticket(s)"  # on-call, role, PM
    pages = pages_to(app, OLGA.email)
    assert len(pages) == 6
    listing = pages[-1]
    assert "P1 storm: 15 new P1" in listing.subject
    mail = message_from_bytes(listing.mime, policy=policy.default)
    text = " ".join(mail.get_body(("plain",)).get_content().split())  # type: ignore[union-attr]
    assert all(f"{key} CRM is down" in text for key in keys[5:]) and f"{keys[0]} CRM is down" not in text
    assert app.escalator.storm.coalesce() == "no held pages"  # once: a second beat sends nothing
    with app.store.read() as s:
        held = list(s.scalars(select(Escalation).where(Escalation.level == "p1-held")))
    assert len(held) == 15 and all(OLGA.email in row.recipients for row in held)

    clock.advance(minutes=11)  # after the window a new P1 pages at once again
    report(app, P1_MAIL, sender="late@customer.example", message_id="late@x.example")
    assert len(pages_to(app, OLGA.email)) == 7


def test_a_few_p1_pages_are_not_held(make_app, tmp_path, db_url):
    app = make_app(config=desk_config(tmp_path, db_url=db_url, incidents=False))  # one P1 each, not an incident
    for i in range(3):
        report(app, P1_MAIL, sender=f"user{i}@customer.example", message_id=f"few{i}@x.example")
    assert len(pages_to(app, OLGA.email)) == 3
    assert app.escalator.storm.coalesce() == "no held pages"
