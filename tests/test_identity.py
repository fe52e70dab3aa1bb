"""Ambiguous identity gets no authority; no From or our own address is quarantined (issue #12)."""

from __future__ import annotations

import pytest
from desk_kit import ADA, P2_MAIL, SUPPORT, desk_config, report, signed_address, ticket
from sqlalchemy import func, select

from intake.parse.parser import parse_message
from tickets.models import OutboxItem, QuarantineItem


@pytest.mark.parametrize(("from_value", "address", "problem"), [
    ("ada@example.com <attacker@evil.test>", "attacker@evil.test", "another address (ada@example.com)"),
    ('"ada@example.com" <attacker@evil.test>', "attacker@evil.test", "another address (ada@example.com)"),
    ("=?utf-8?q?ada=40example=2Ecom?= <attacker@evil.test>", "attacker@evil.test", "another address"),
    ("attacker@evil.test (ada@example.com)", "attacker@evil.test", "another address (ada@example.com)"),
    ("<@relay.example:attacker@evil.test>", "attacker@evil.test", "a source route"),
    ("Team: ada@example.com, bob@evil.test;", "ada@example.com", "a group"),
    ("ada@example.com, attacker@evil.test", "ada@example.com", "2 addresses"),
    ("Ada <ada@example.com> <attacker@evil.test>", "attacker@evil.test", "2 addresses"),
    ("Ada Admin <ada@example.com>", "ada@example.com", ""),
    ('"Admin, Ada" <ADA@example.com>', "ada@example.com", ""),
    ('"ada@example.com" <ada@example.com>', "ada@example.com", ""),
])
def test_the_real_address_and_why_it_is_ambiguous(from_value: str, address: str, problem: str) -> None:
    parsed = parse_message(f"From: {from_value}\r\nTo: {SUPPORT}\r\nSubject: x\r\n\r\nhi\r\n".encode())
    assert parsed.from_addr == address
    if problem:
        assert problem in parsed.from_problem and parsed.authority_address == ""
        assert any("ambiguous From" in n for n in parsed.notes)
    else:
        assert parsed.from_problem == "" and parsed.authority_address == address


def signed_reply(app, key: str, from_value: str, body: str) -> bytes:  # type: ignore[no-untyped-def]
    # Ada's own signed address (as if her notice had been forwarded): only the From decides who acts.
    return (f"From: {from_value}\r\nTo: {signed_address(app, key, ADA.email)}\r\nSubject: Re: [{key}] escalation\r\n"
            f"Message-ID: <{abs(hash(from_value + body))}@evil.test>\r\n\r\n{body}\r\n").encode()


@pytest.mark.parametrize("from_value", ["ada@example.com <attacker@evil.test>", "ada@example.com, attacker@evil.test",
                                        "Team: ada@example.com;", "<@relay.example:ada@example.com>"])
def test_an_ambiguous_from_never_acts_as_a_team_member(make_app, tmp_path, from_value):
    app = make_app(config=desk_config(tmp_path))
    key = report(app, P2_MAIL)
    result = app.pipeline.ingest(signed_reply(app, key, from_value, "#ack\n#severity P4"))
    assert result.action == "comment" and "ambiguous From" in result.detail
    after = ticket(app, key)
    assert after.status == "new" and after.severity == "P2"
    genuine = app.pipeline.ingest(signed_reply(app, key, f"Ada Admin <{ADA.email}>", "#ack"))
    assert genuine.key == key and ticket(app, key).status == "acknowledged"


def test_an_ambiguous_from_does_not_act_as_the_reporter(make_app, tmp_path):
    app = make_app(config=desk_config(tmp_path))
    key = report(app, P2_MAIL, message_id="orig@customer.example")
    raw = (f"From: maria@customer.example <attacker@evil.test>\r\nTo: {SUPPORT}\r\nSubject: Re: [{key}] x\r\n"
           "In-Reply-To: <orig@customer.example>\r\nMessage-ID: <amb@evil.test>\r\n\r\nPlease close it.\r\n").encode()
    result = app.pipeline.ingest(raw)
    # Not Maria: a stranger quoting her ticket gets a ticket of his own, linked; hers is untouched.
    assert result.action == "created" and result.key != key and f"linked to {key}" in result.detail
    assert ticket(app, result.key).reporter == "attacker@evil.test"
    assert len(ticket(app, key).messages) == 2  # her request and our acknowledgement, nothing more


@pytest.mark.parametrize(("head", "reason"), [
    ("Sender: someone@customer.example", "no From address"),
    (f"From: Support <{SUPPORT}>", "our own address"),
    ("From: support+HC-1.abc@example.com", "our own address"),
])
def test_no_from_or_our_own_address_is_quarantined_never_acknowledged(make_app, tmp_path, db_url, head, reason):
    app = make_app(config=desk_config(tmp_path, db_url=db_url))
    raw = f"{head}\r\nTo: {SUPPORT}\r\nSubject: CRM down\r\nMessage-ID: <q@x.example>\r\n\r\nAll users blocked.\r\n"
    result = app.pipeline.ingest(raw.encode())
    assert result.action == "quarantined" and reason in result.detail
    with app.store.read() as s:
        assert s.scalar(select(func.count()).select_from(OutboxItem)) == 0
        assert reason in s.scalar(select(QuarantineItem.reason))
