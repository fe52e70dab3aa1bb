"""Bounded recipients (issue 13): a request copied to 500 outsiders does not make every answer go to 501 people.

End to end through the real SMTP intake and relay, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
from desk_kit import ADA, P3_MAIL, REPORTER, SUPPORT
from reply_kit import Desk, mail

from replies.command_syntax import parse_reply_commands


def _answer(desk: Desk, key: str, body: str, message_id: str) -> list[str]:
    """Ada answers with her own signed address; returns who got the public answer (or [] if none)."""
    address = desk.app.tokens.reply_address(key, ADA.email, desk.app.clock.now())
    desk.send(mail(sender=ADA.email, to=address, subject=f"Re: [{key}]", body=body, name="Ada Admin",
                   message_id=message_id), address, ADA.email)
    answers = [d for d in desk.flush() if REPORTER in d.recipients]
    return sorted(answers[0].recipients) if answers else []


def test_cc_list_is_capped_to_allowed_domains_and_recorded(desk):
    colleagues = [f"colleague{i}@customer.example" for i in range(15)]
    outsiders = [f"victim{i}@elsewhere.example" for i in range(500)]
    raw = mail(sender=REPORTER, to=SUPPORT, subject="[URGENT] click http://evil.example", body=P3_MAIL[1],
               cc=", ".join([*outsiders[:250], *colleagues, *outsiders[250:], ADA.email]), name="Maria Keller")
    desk.send(raw, SUPPORT, REPORTER)
    key = "HC-1"
    t = desk.ticket(key)
    copied = sorted(p.email for p in t.participants if p.kind == "cc")
    assert copied == sorted(colleagues[:10])  # the first ten of the reporter's domain, in mail order
    [limited] = desk.events(key, "participants_limited")
    assert limited.data["limit"] == 10 and limited.data["outside"] == 500 and limited.data["over_cap"] == 5
    assert limited.data["kept"] == 10 and len(limited.data["not_added"]) == 20
    assert "500 outside the reporter's and the team's domains" in limited.detail
    sent = desk.flush()
    assert not [r for d in sent for r in d.recipients if "elsewhere" in r]  # the acknowledgement included
    assert _answer(desk, key, "Hello Maria,\nwe are on it.", "a1@example.com") == sorted([REPORTER, *colleagues[:10]])


def test_team_member_adds_and_removes_a_copied_person(desk):
    desk.send(mail(sender=REPORTER, to=SUPPORT, subject=P3_MAIL[0], body=P3_MAIL[1], cc="partner@contractor.example"),
              SUPPORT, REPORTER)
    key = "HC-1"
    desk.flush()
    assert [e.data["not_added"] for e in desk.events(key, "participants_limited")] == [["partner@contractor.example"]]
    got = _answer(desk, key, "#cc add partner@contractor.example\n\nHello Maria and partner,\nfixed.", "a2@example.com")
    assert got == sorted([REPORTER, "partner@contractor.example"])
    [added] = desk.events(key, "participant_added")
    assert added.actor == ADA.email and added.data["email"] == "partner@contractor.example"
    got = _answer(desk, key, "#cc remove partner@contractor.example\n\nOnly for you, Maria.", "a3@example.com")
    assert got == [REPORTER]
    assert desk.events(key, "participant_removed")[0].actor == ADA.email
    # Without authority #cc adds nobody (the forged reply is refused as a whole).
    desk.send(mail(sender=ADA.email, to=SUPPORT, subject=f"Re: [{key}]", body="#cc add evil@evil.example\n\nhi",
                   message_id="forged-cc@evil.example"), SUPPORT, ADA.email)
    assert not [p for p in desk.ticket(key).participants if p.email == "evil@evil.example"]
    assert desk.events(key, "refused")


@pytest.mark.parametrize("line", ["#cc add", "#cc invite a@b.example", "#cc add a@b.example c@d.example",
                                  "#cc add a\x00@b.example", "#cc add <a@b.example>,x@y.example",
                                  "#cc add " + "a" * 5000 + "@b.example", "#cc add a@b", "#cc add a@@b.example",
                                  "#cc add ä@b.example"])
def test_cc_command_refuses_hostile_arguments(line):
    reply = parse_reply_commands(line)
    assert not reply.ok and reply.problems[0].reason.startswith("#cc")


def test_cc_command_reads_a_plain_address():
    reply = parse_reply_commands("#cc add <Partner@Contractor.example>\n#cc remove old@customer.example")
    assert reply.ok and [c.arg for c in reply.commands] == ["add partner@contractor.example",
                                                            "remove old@customer.example"]
    many = parse_reply_commands("\n".join(["#cc add a@b.example"] * 3000))
    assert not many.ok  # more than MAX_COMMANDS: refused whole
