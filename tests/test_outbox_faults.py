"""The outbox against a real aiosmtpd relay that misbehaves: 421, 451, 550, drops, slow answers,
refused recipients, an hour of downtime; and header injection attempts."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from mailkit import Relay, parse
from sqlalchemy import select

from config import Config, NotifierSettings, SmtpOutSettings
from notifier.mime import BadAddress, OutgoingMail, build_mime, clean_address
from notifier.outbox import Outbox, enqueue
from notifier.transports import SmtpTransport
from tickets.models import BouncingRecipient, OutboxItem


def _app(make_app, tmp_path, relay_port: int, timeout: float = 5, **notifier):  # type: ignore[no-untyped-def]
    cfg = Config(base_dir=tmp_path, smtp_out=SmtpOutSettings(host="127.0.0.1", port=relay_port, timeout=timeout),
                 notifier=NotifierSettings(**notifier))
    app = make_app(cfg)
    app.outbox.rng = random.Random(7)
    return app


def _queue(app, n: int, kind: str = "ack", to=None) -> list[int]:  # type: ignore[no-untyped-def]
    ids = []
    with app.store.session() as s:
        for i in range(n):
            mail = OutgoingMail(kind=kind, to=to or [f"user{i}@customer.example"], subject=f"mail {i}", text="hi")
            ids.append(enqueue(s, mail, key=f"t:{i}", support=app.config.support, now=app.clock.now()).id)
    return ids


def _items(app) -> dict[int, OutboxItem]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return {i.id: i for i in s.scalars(select(OutboxItem))}


def _drain(app, clock, rounds: int = 200, step=timedelta(minutes=1)) -> int:  # type: ignore[no-untyped-def]
    """Flush once a minute until nothing is pending; return the number of flushes."""
    for n in range(rounds):
        app.outbox.flush(app.transport())
        if all(i.status in ("sent", "dead", "suppressed") for i in _items(app).values()):
            return n + 1
        clock.advance(step)
    raise AssertionError("outbox never drained")


def _delivered_ids(relay) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter(d.message["Message-ID"].strip("<>") for d in relay.deliveries)


def test_every_message_delivered_once_or_dead_with_reason(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port)
    ids = _queue(app, 12)
    relay.handler.faults.extend([
        "421 4.3.2 shutting down", "451 4.3.0 try later", "550 5.1.1 no such user", "drop", "slow:0.3",
        "452 4.2.2 mailbox full", "554 5.7.1 rejected as spam", "drop", "451 4.7.1 greylisted",
    ])
    _drain(app, clock)
    items = _items(app)
    dead = {i.id: i.last_error for i in items.values() if i.status == "dead"}
    assert sorted(e.split()[0] for e in dead.values()) == ["550", "554"]  # the server's answer, first try
    assert all(items[i].attempts == 1 for i in dead)
    sent = [i for i in items.values() if i.status == "sent"]
    assert len(sent) == 10 and len(sent) + len(dead) == len(ids)
    delivered = _delivered_ids(relay)
    assert delivered == Counter({i.message_id: 1 for i in sent})  # exactly once each, nothing for the dead
    retried = [i for i in sent if i.attempts > 1]
    assert len(retried) == 6 and all(i.last_error for i in retried)


def test_one_connection_per_flush_and_reconnect_after_drop(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port)
    _queue(app, 5)
    report = app.outbox.flush(app.transport())
    assert report.sent == 5 and relay.handler.connections == 1
    # Recorded (group commit) with the send time, one attempt each.
    assert {(i.status, i.attempts, i.sent_at) for i in _items(app).values()} == {("sent", 1, clock.now())}
    with app.store.session() as s:
        for i in range(4):
            enqueue(s, OutgoingMail(kind="ack", to=[f"x{i}@c.example"], subject="s", text="t"),
                    key=f"more:{i}", support=app.config.support, now=clock.now())
    relay.handler.faults.extend(["drop"])
    report = app.outbox.flush(app.transport())
    # One new connection for the flush, one after the drop; the dropped one waits for its backoff.
    assert (report.sent, report.retried) == (3, 1) and relay.handler.connections == 3


def test_slow_answer_within_timeout_is_one_delivery(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port, timeout=3)
    _queue(app, 2)
    relay.handler.faults.extend(["slow:0.5", "slow:0.5"])
    assert app.outbox.flush(app.transport()).sent == 2
    assert len(relay.deliveries) == 2


def test_answer_slower_than_timeout_is_retried_with_the_same_message_id(make_app, tmp_path, relay, clock):
    """SMTP cannot tell "lost" from "slow" after the final dot (RFC 1047): we retry rather than lose,
    and the retry carries the same bytes and Message-ID, so the receiving side can deduplicate."""
    app = _app(make_app, tmp_path, relay.port, timeout=0.5)
    [item_id] = _queue(app, 1)
    relay.handler.faults.extend(["slow:1.5"])
    report = app.outbox.flush(app.transport())
    assert report.retried == 1 and "connection lost" in _items(app)[item_id].last_error
    clock.advance(hours=2)
    import time

    time.sleep(1.2)  # let the relay finish its slow answer before we look (real socket, real time)
    assert app.outbox.flush(app.transport()).sent == 1
    ids = _delivered_ids(relay)
    assert list(ids) == [_items(app)[item_id].message_id]  # one Message-ID, whatever the copies


def test_transient_failures_give_up_after_max_attempts(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port, max_attempts=3)
    [item_id] = _queue(app, 1)
    relay.handler.faults.extend(["451 4.3.0 later"] * 3)
    _drain(app, clock, step=timedelta(minutes=10))
    item = _items(app)[item_id]
    assert item.status == "dead" and item.attempts == 3
    assert item.last_error == "gave up after 3 attempts: 451 4.3.0 later"
    assert app.outbox.retry(item_id) and app.outbox.flush(app.transport()).sent == 1


def test_refused_recipients_permanent_noted_temporary_retried_alone(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port)
    [item_id] = _queue(app, 1, to=["a@c.example", "b@c.example", "c@c.example"])
    relay.handler.rcpt_faults = {"b@c.example": "450 4.2.0 greylisted", "c@c.example": "550 5.1.1 unknown user"}
    assert app.outbox.flush(app.transport()).sent == 1
    items = _items(app)
    first = items[item_id]
    assert first.status == "sent" and "c@c.example: 550 5.1.1 unknown user" in first.last_error
    [follow] = [i for i in items.values() if i.id != item_id]
    assert follow.recipients == ["b@c.example"] and follow.message_id == first.message_id
    relay.handler.rcpt_faults = {}
    _drain(app, clock)
    assert [d.recipients for d in relay.deliveries] == [["a@c.example"], ["b@c.example"]]
    assert len(_delivered_ids(relay)) == 1  # the same message, completed for b


def test_all_recipients_refused_permanently_is_dead_temporarily_is_retried(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port)
    [perm] = _queue(app, 1, to=["x@c.example"])
    relay.handler.rcpt_faults = {"x@c.example": "550 5.1.1 unknown user"}
    app.outbox.flush(app.transport())
    assert _items(app)[perm].status == "dead" and "550 5.1.1 unknown user" in _items(app)[perm].last_error


class CountingTransport(SmtpTransport):
    opens = 0

    def open(self) -> None:
        CountingTransport.opens += 1
        super().open()


def test_relay_down_for_an_hour_loses_nothing_and_floods_nothing(make_app, tmp_path, clock):
    relay = Relay().start()
    port = relay.port
    app = _app(make_app, tmp_path, port, timeout=2)
    relay.stop()
    _queue(app, 30)
    CountingTransport.opens = 0
    transport = CountingTransport(app.config.smtp_out)
    flushes_with_due = 0
    for _ in range(60):  # one flush a minute for an hour, relay down
        due = [i for i in _items(app).values() if i.status == "pending" and i.next_attempt_at <= clock.now()]
        flushes_with_due += bool(due)
        app.outbox.flush(transport)
        clock.advance(minutes=1)
        if _ == 0:
            assert CountingTransport.opens == 1  # 30 rows due: one connection attempt, not 30
    items = _items(app).values()
    assert all(i.status == "pending" for i in items)  # nothing lost, nothing dead
    assert all("unreachable" in (i.last_error or "") for i in items)
    # Backoff: each row was tried a handful of times; a flush with something due knocks exactly once,
    # a flush with nothing due not at all.
    assert max(i.attempts for i in items) <= 7
    assert CountingTransport.opens == flushes_with_due < 60
    # The relay comes back: everything goes out once, spread out, over one connection per flush.
    back = Relay(port=port).start()
    try:
        sizes = []
        for _ in range(90):
            sizes.append(app.outbox.flush(transport).sent)
            if all(i.status == "sent" for i in _items(app).values()):
                break
            clock.advance(minutes=1)
        assert all(i.status == "sent" for i in _items(app).values())
        assert sorted(_delivered_ids(back).values()) == [1] * 30
        assert back.handler.connections == sum(1 for n in sizes if n)
        assert max(sizes) < 30  # jitter spreads the backlog; the relay is not hit by all of it at once
    finally:
        back.stop()


def test_backoff_grows_exponentially_with_jitter_and_cap(make_app, tmp_path):
    app = make_app(Config(base_dir=tmp_path, notifier=NotifierSettings(retry_base_seconds=60,
                                                                        retry_max_seconds=3600)))
    outbox: Outbox = app.outbox
    outbox.rng = random.Random(1)
    for attempt, ceiling in ((1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (12, 3600)):
        samples = [outbox.backoff(attempt) for _ in range(200)]
        assert min(samples) >= ceiling / 2 and max(samples) <= ceiling
        assert len({round(s) for s in samples}) > 20  # jitter: retries do not line up


def test_bouncing_recipients_suppressed_and_listed(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port)
    with app.store.session() as s:
        s.add(BouncingRecipient(email="gone@c.example", first_at=clock.now(), last_at=clock.now(), count=3,
                                reason="550 mailbox unavailable"))
    [both] = _queue(app, 1, to=["gone@c.example", "ok@c.example"])
    report = app.outbox.flush(app.transport())
    assert report.sent == 1 and [d.recipients for d in relay.deliveries] == [["ok@c.example"]]
    assert _items(app)[both].suppressed == ["gone@c.example"]
    import argparse

    from notifier.outbox_cli import cmd_list

    cmd_list(app, argparse.Namespace(status=None, json=False))
    listing = app.out.getvalue()
    assert "suppressed (bouncing): gone@c.example" in listing
    assert "gone@c.example" in listing.split("Bouncing recipients")[1] and "550 mailbox unavailable" in listing


# --- header injection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["subject", "name", "reply_to", "in_reply_to", "references", "extra"])
def test_header_injection_attempts_never_add_a_header(field, clock):
    evil = "x\r\nBcc: victim@evil.example\r\nX-Injected: yes"
    mail = OutgoingMail(kind="ack", to=["a@b.example"], subject="Hello", text="body")
    name = "Desk"
    if field == "subject":
        mail.subject = evil
    elif field == "name":
        name = evil
    elif field == "reply_to":
        mail.reply_to = "r@b.example\r\nBcc: victim@evil.example"
    elif field == "in_reply_to":
        mail.in_reply_to = "id@x>\r\nBcc: victim@evil.example"
    elif field == "references":
        mail.references = ["ok@x", "bad@x>\nBcc: victim@evil.example"]
    else:
        mail.extra_headers = {"X-Note": evil}
    try:
        msg = build_mime(mail, sender_address="support@localhost", sender_name=name, message_id="hc.t@localhost",
                         date=clock.now())
    except BadAddress:
        assert field == "reply_to"  # refused outright rather than sent
        return
    raw = msg.as_bytes()
    parsed = parse(raw)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    assert b"\nBcc:" not in raw and b"\nX-Injected:" not in raw
    if field == "references":
        assert parsed["References"] == "<ok@x>"


def test_injected_recipient_never_reaches_the_relay(make_app, tmp_path, relay, clock):
    app = _app(make_app, tmp_path, relay.port)
    with app.store.session() as s:
        item = enqueue(s, OutgoingMail(kind="ack", to=["ok@c.example", "a@c.example\r\nRCPT TO:<victim@evil.example>"],
                                       subject="s", text="t"), key="inj", support=app.config.support, now=clock.now())
        only_bad = enqueue(s, OutgoingMail(kind="ack", to=["bad address@x"], subject="s", text="t"), key="inj2",
                           support=app.config.support, now=clock.now())
        item_id, bad_id = item.id, only_bad.id
    app.outbox.flush(app.transport())
    assert [d.recipients for d in relay.deliveries] == [["ok@c.example"]]
    items = _items(app)
    assert "invalid recipient" in items[item_id].last_error
    assert items[bad_id].status == "dead" and "invalid recipient" in items[bad_id].last_error
    with pytest.raises(BadAddress):
        clean_address("x@y\nz")


def test_references_thread_and_keep_the_root(clock):
    refs = [f"m{i}@x" for i in range(30)]
    mail = OutgoingMail(kind="ack", to=["a@b.example"], subject="s", text="t", in_reply_to="m30@x", references=refs)
    msg = build_mime(mail, sender_address="support@localhost", sender_name="Desk", message_id="hc.ack.1@localhost",
                     date=clock.now())
    kept = msg["References"].split()
    assert len(kept) == 20 and kept[0] == "<m0@x>" and kept[-1] == "<m30@x>"
    assert msg["In-Reply-To"] == "<m30@x>" and msg["Message-ID"] == "<hc.ack.1@localhost>"
