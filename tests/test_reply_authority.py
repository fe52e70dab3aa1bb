"""Reading the desk never grants acting on it (issue 13): a reply token is a bound, bounded credential.

Every scenario goes through the real SMTP intake and the real relay, on SQLite and PostgreSQL,
and asserts that nothing changed, nothing leaked and the audit trail says why.
"""

from __future__ import annotations

import argparse
import io
import logging
from datetime import timedelta
from typing import Any

import pytest
from desk_kit import ADA, P3_MAIL, PAM, REPORTER, SUPPORT, TIM
from reply_kit import TOKEN_RE, Desk, mail, member_reply, reply_to_of, report_by_smtp
from sqlalchemy import select

from config import SupportSettings
from tickets.models import Message, OutboxItem
from tickets.reply_secret import ReplySecrets, ReplySecretStore
from tickets.tokens import EXPIRED, FORGED, OTHER_MEMBER, TOKEN_LENGTH, VALID, ReplyTokens


def _escalated_p3(desk: Desk, clock: Any) -> tuple[str, str]:
    """A P3 (crm_admin: Ada) reported by SMTP and escalated at 50 %: the key and Ada's signed Reply-To."""
    key = report_by_smtp(desk, *P3_MAIL, sender=REPORTER, message_id="req-1@customer.example")
    desk.flush()
    clock.advance(hours=5)
    assert desk.app.escalator.sweep().escalated
    [page] = desk.to(ADA.email, desk.flush())
    return key, reply_to_of(page)


def _state(desk: Desk, key: str) -> tuple[Any, ...]:
    t = desk.ticket(key)
    return (t.status, t.severity, t.role, t.assignee, t.first_response_at, t.resolved_at)


# --- the token itself ---------------------------------------------------------------------------

def test_token_is_bound_to_ticket_and_member_expires_and_has_96_bits(clock):
    tokens = ReplyTokens(ReplySecrets("s" * 64), SupportSettings(address=SUPPORT), token_days=14)
    now = clock.now()
    address = tokens.reply_address("HC-7", ADA.email, now)
    token = address.split(".", 1)[1].split("@")[0]
    assert TOKEN_LENGTH * 4 >= 96 and len(token) == 5 + TOKEN_LENGTH
    assert len(address.split("@")[0]) <= 64  # a local part any MTA accepts
    team = [ADA.email, TIM.email]
    assert tokens.check("HC-7", token, ADA.email, now, team).verdict == VALID
    assert tokens.check("HC-7", token, "ADA@EXAMPLE.COM", now, team).verdict == VALID
    other = tokens.check("HC-7", token, TIM.email, now, team)
    assert (other.verdict, other.minted_for) == (OTHER_MEMBER, ADA.email)
    assert tokens.check("HC-8", token, ADA.email, now, team).verdict == FORGED  # another ticket
    assert tokens.check("HC-7", token, "mallory@evil.example", now, team).verdict == OTHER_MEMBER
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
    assert tokens.check("HC-7", flipped, ADA.email, now, team).verdict == FORGED
    longer = f"{int(token[:5], 16) + 1000:05x}" + token[5:]  # a forged later expiry breaks the MAC
    assert tokens.check("HC-7", longer, ADA.email, now, team).verdict == FORGED
    assert tokens.check("HC-7", token, ADA.email, now + timedelta(days=13, hours=23), team).valid
    late = tokens.check("HC-7", token, ADA.email, now + timedelta(days=14, hours=2), team)
    assert late.verdict == EXPIRED and "expired" in late.reason(ADA.email)
    for hostile in ("", "0" * 29, "\x00" * 29, "g" * 29, "a" * 5000):
        assert tokens.check("HC-7", hostile, ADA.email, now, team).verdict == FORGED


def test_sign_mail_signs_only_the_header_placeholder_for_one_recipient(clock):
    tokens = ReplyTokens(ReplySecrets("s" * 64), SupportSettings(address=SUPPORT))
    now = clock.now()
    stored = (f"Reply-To: {tokens.unsigned_address('HC-7')}\r\nSubject: x\r\n\r\n"
              f"body names {tokens.unsigned_address('HC-7')}\r\n").encode()
    signed = tokens.sign_mail(stored, [ADA.email], now).decode()
    assert f"Reply-To: {tokens.reply_address('HC-7', ADA.email, now)}\r\n" in signed
    assert signed.endswith(f"body names {tokens.unsigned_address('HC-7')}\r\n")  # the body is never touched
    shared = tokens.sign_mail(stored, [ADA.email, TIM.email], now).decode()
    assert "Reply-To: support+HC-7@example.com\r\n" in shared  # several readers: no one's credential
    plain = b"Subject: ack\r\n\r\nhello\r\n"
    assert tokens.sign_mail(plain, [REPORTER], now) is plain


def test_rotation_keeps_old_tokens_for_the_grace_period_only(sqlite_store, clock):
    secrets = ReplySecretStore(sqlite_store, {}, grace_hours=24)
    tokens = ReplyTokens(lambda: secrets.load(clock.now()), SupportSettings(address=SUPPORT))
    old = tokens.token("HC-1", ADA.email, clock.now())
    secrets.rotate(clock.now())
    tokens.reload()
    new = tokens.token("HC-1", ADA.email, clock.now())
    assert new != old
    assert tokens.check("HC-1", old, ADA.email, clock.now()).valid  # within the grace
    assert tokens.check("HC-1", new, ADA.email, clock.now()).valid
    clock.advance(hours=25)
    tokens.reload()
    assert tokens.check("HC-1", old, ADA.email, clock.now()).verdict == FORGED
    assert tokens.check("HC-1", new, ADA.email, clock.now()).valid
    secrets.rotate(clock.now(), grace=False)
    tokens.reload()
    assert tokens.check("HC-1", new, ADA.email, clock.now()).verdict == FORGED


def test_environment_secret_rotation_honours_previous_for_the_grace(sqlite_store, clock):
    env = {"HYPERCARE_REPLY_SECRET": "first-secret-" + "x" * 20}
    first = ReplyTokens(ReplySecretStore(sqlite_store, env).load(clock.now()), SupportSettings(address=SUPPORT))
    old = first.token("HC-1", ADA.email, clock.now())
    clock.advance(hours=1)
    env2 = {"HYPERCARE_REPLY_SECRET": "second-secret-" + "y" * 20,
            "HYPERCARE_REPLY_SECRET_PREVIOUS": env["HYPERCARE_REPLY_SECRET"]}
    store2 = ReplySecretStore(sqlite_store, env2, grace_hours=24)
    second = ReplyTokens(lambda: store2.load(clock.now()), SupportSettings(address=SUPPORT))
    assert second.check("HC-1", old, ADA.email, clock.now()).valid
    clock.advance(hours=23)
    second.reload()
    assert second.check("HC-1", old, ADA.email, clock.now()).valid
    clock.advance(hours=2)
    second.reload()
    assert second.check("HC-1", old, ADA.email, clock.now()).verdict == FORGED
    # Without the previous value, the change invalidates at once; the secret itself is never stored.
    third = ReplyTokens(ReplySecretStore(sqlite_store, {"HYPERCARE_REPLY_SECRET": "third-" + "z" * 30})
                        .load(clock.now()), SupportSettings(address=SUPPORT))
    assert third.check("HC-1", old, ADA.email, clock.now()).verdict == FORGED
    with sqlite_store.read() as s:
        from tickets.models import Setting

        values = " ".join(s.scalars(select(Setting.value)))
    assert "first-secret" not in values and "second-secret" not in values


def test_secret_rotate_command_refuses_an_environment_secret(make_app, tmp_path):
    from desk_kit import desk_config

    from core.errors import UserError
    from tickets.secret_cli import cmd_rotate

    app = make_app(desk_config(tmp_path))
    app.environ = {"HYPERCARE_REPLY_SECRET": "from-env-" + "q" * 30}
    with pytest.raises(UserError, match="HYPERCARE_REPLY_SECRET"):
        cmd_rotate(app, argparse.Namespace(no_grace=False))


# --- end to end: through the SMTP intake and the relay -------------------------------------------

def test_each_member_gets_their_own_signed_reply_to_and_only_it_acts(desk, clock):
    key = report_by_smtp(desk, "CRM is down", "Nobody can log in since 8:00, the whole sales team is blocked.",
                         sender=REPORTER)
    pages = desk.flush()
    escalations = [d for d in pages if "New P1" in d.message["Subject"]]
    assert len(escalations) == 3 and all(len(d.recipients) == 1 for d in escalations)
    assert {PAM.email, "olga@example.com"} <= {d.recipients[0] for d in escalations}
    addresses = {d.recipients[0]: reply_to_of(d) for d in escalations}
    assert len(set(addresses.values())) == 3  # one credential per member
    for d in escalations:  # the text names no credential, only the header does
        assert not TOKEN_RE.search(d.message.get_body(("plain",)).get_content())
    before = _state(desk, key)
    # Pam's address used with Ada's From (forged or forwarded): nothing changes.
    member_reply(desk, addresses[PAM.email], "#resolve all fine\n#severity P4", sender=ADA.email, key=key)
    assert _state(desk, key) == before
    [refused] = desk.events(key, "refused")
    assert refused.actor == ADA.email and f"sent to {PAM.email}, not to {ADA.email}" in refused.data["reason"]
    # Pam's own reply acts.
    member_reply(desk, addresses[PAM.email], "#ack", sender=PAM.email, key=key)
    assert desk.ticket(key).assignee == PAM.email


def test_stolen_token_with_spoofed_from_changes_nothing_for_an_outsider(desk, clock):
    key, _ada_address = _escalated_p3(desk, clock)
    # The outsider knows Ada's address and spoofs it, but holds Tim's token (from a forwarded mail).
    stolen = reply_to_of(_assign(desk, key))
    before = _state(desk, key)
    member_reply(desk, stolen, "#resolve fixed\n#severity P4", sender=ADA.email, key=key)
    member_reply(desk, stolen, "#severity P4", sender="mallory@evil.example", name="Mallory", key=key)
    assert _state(desk, key)[:2] == before[:2] and not desk.events(key, "resolved")
    reasons = [e.data.get("reason", "") for e in desk.events(key) if e.kind in ("refused", "comment")]
    assert any(f"sent to {TIM.email}, not to {ADA.email}" in r for r in reasons)
    assert any("not on the team" in r for r in reasons)
    sent = desk.flush()
    assert not [d for d in sent if "mallory@evil.example" in d.recipients or REPORTER in d.recipients]
    # The reporter holding a leaked team address adds information; they cannot act.
    member_reply(desk, stolen, "#resolve\n#severity P4\n\nplease close", sender=REPORTER, key=key)
    assert _state(desk, key)[:2] == before[:2] and not desk.events(key, "resolved")


@pytest.mark.parametrize("key, value", [("token_days", 0), ("token_days", -1), ("token_days", "14"),
                                        ("token_days", True), ("secret_grace_hours", -1), ("cc_limit", -1),
                                        ("cc_limit", 10**9), ("cc_limit", 1.5), ("nonsense", 1)])
def test_replies_config_refuses_hostile_values(key, value):
    from config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"\[replies\]"):
        parse_config({"replies": {key: value}}, base_dir=None)  # type: ignore[arg-type]


def _assign(desk: Desk, key: str) -> Any:
    """Ada (with her own token) hands the ticket to Tim's role: Tim gets a mail signed for him."""
    ada = desk.app.tokens.reply_address(key, ADA.email, desk.app.clock.now())
    member_reply(desk, ada, "#assign technical_consultant", sender=ADA.email, key=key)
    [notice] = desk.to(TIM.email, desk.flush())
    return notice


def test_expired_token_is_refused_and_a_new_mail_renews_it(desk, clock):
    key, ada_address = _escalated_p3(desk, clock)
    clock.advance(days=15)
    before = _state(desk, key)
    member_reply(desk, ada_address, "#severity P1", sender=ADA.email, key=key)
    assert _state(desk, key) == before
    [refused] = desk.events(key, "refused")
    assert "expired" in refused.data["reason"]
    [refusal] = desk.to(ADA.email, desk.flush())
    assert "expired" in refusal.message.get_body(("plain",)).get_content()
    # The refusal itself is a new mail to Ada: its Reply-To is fresh and acts.
    member_reply(desk, reply_to_of(refusal), "#severity P2", sender=ADA.email, key=key)
    assert desk.ticket(key).severity == "P2"


def test_rotation_by_command_ends_old_tokens_after_the_grace(desk, clock):
    from tickets.secret_cli import cmd_rotate

    key, ada_address = _escalated_p3(desk, clock)
    cmd_rotate(desk.app, argparse.Namespace(no_grace=False))
    assert "keep working until" in desk.app.out.getvalue()
    clock.advance(hours=2)
    member_reply(desk, ada_address, "#ack", sender=ADA.email, key=key)
    assert desk.ticket(key).assignee == ADA.email  # within the grace
    cmd_rotate(desk.app, argparse.Namespace(no_grace=True))
    member_reply(desk, ada_address, "#severity P1", sender=ADA.email, key=key)
    assert desk.ticket(key).severity == "P3"
    assert "signed reply address" in desk.events(key, "refused")[-1].data["reason"]


# --- nothing stored or shown carries a credential ------------------------------------------------

def test_no_surface_shows_a_reply_token_after_a_full_scenario(desk, clock, caplog, tmp_path):
    caplog.set_level(logging.DEBUG, logger="hypercare")  # ours (aiosmtpd's mail.log is WARNING in the service)
    app = desk.app
    seen: set[str] = set()

    def remember(deliveries: list[Any]) -> list[Any]:
        for d in deliveries:
            seen.update(m.lower() for m in TOKEN_RE.findall(d.data.decode("utf-8", "replace")))
        return deliveries

    key = report_by_smtp(desk, *P3_MAIL, sender=REPORTER, message_id="req-9@customer.example")
    remember(desk.flush())
    clock.advance(hours=5)
    app.escalator.sweep()
    [page] = desk.to(ADA.email, remember(desk.flush()))
    ada = reply_to_of(page)
    member_reply(desk, ada, "#note checking the label\n\nsee " + ada, sender=ADA.email, key=key)
    member_reply(desk, ada, "#assign technical_consultant", sender=ADA.email, key=key)
    [tim_mail] = desk.to(TIM.email, remember(desk.flush()))
    member_reply(desk, reply_to_of(tim_mail), "Hello Maria,\nthe label is fixed.", sender=TIM.email, key=key,
                 name="Tim Tech")
    remember(desk.flush())
    desk.send(_reporter_reply(key), SUPPORT, REPORTER)
    remember(desk.flush())
    member_reply(desk, reply_to_of(tim_mail), "#resolve fixed the label", sender=TIM.email, key=key)
    remember(desk.flush())
    assert len(seen) >= 2, seen  # Ada's and Tim's (same member, ticket and hour: same token)

    surfaces = _every_surface(app, key, tmp_path)
    surfaces["log"] = caplog.text
    for name, text in surfaces.items():
        found = TOKEN_RE.search(text)
        assert not found, (name, text[max(0, found.start() - 300):found.end() + 50] if found else "")
        for token in seen:
            assert token not in text.lower(), name


def test_quarantined_mail_is_kept_without_its_token(desk, clock):
    from tickets.models import QuarantineItem

    key, ada_address = _escalated_p3(desk, clock)
    token = ada_address.split(".", 1)[1].split("@")[0]
    result = desk.app.pipeline.ingest(b"\x00\x01 not a mail, but it names " + ada_address.encode() + b"\n")
    assert result.action == "quarantined"
    with desk.app.store.read() as s:
        [item] = s.scalars(select(QuarantineItem))
        assert token.encode() not in item.raw and f"{key}.redacted@".encode() in item.raw


def _reporter_reply(key: str) -> bytes:
    from reply_kit import mail

    return mail(sender=REPORTER, to=SUPPORT, subject=f"Re: [{key}] Typo", body="Thanks, looks good now.")


def _get(web: Any, path: str) -> tuple[str, str]:
    seen: list[str] = []
    body = b"".join(web({"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
                         "HTTP_HOST": "127.0.0.1:8025"}, lambda status, headers: seen.append(status)))
    return seen[0], body.decode()


def _every_surface(app: Any, key: str, tmp_path: Any) -> dict[str, str]:
    """Every place the desk shows or stores what happened, as text."""
    from dashboard.cli import cmd_dashboard
    from dashboard.web import DashboardApp
    from handover.cli import cmd_export_tickets, cmd_kb_draft
    from tickets.cli import cmd_show

    out: dict[str, str] = {}
    web = DashboardApp(app)
    for path in ("/", f"/tickets/{key}", "/api/tickets", f"/api/tickets/{key}", "/api/summary", "/healthz"):
        status, body = _get(web, path)
        assert status == "200 OK", (path, status, body[:200])
        out[f"dashboard {path}"] = body

    def run(handler: Any, **kwargs: Any) -> str:
        app.out = io.StringIO()
        handler(app, argparse.Namespace(**kwargs))
        return str(app.out.getvalue())

    out["show"] = run(cmd_show, key=key, json=False)
    out["show --json"] = run(cmd_show, key=key, json=True)
    out["export json"] = run(cmd_export_tickets, format="json", status=None, out=None)
    out["export csv"] = run(cmd_export_tickets, format="csv", status=None, out=None)
    out["kb draft"] = run(cmd_kb_draft, out=None)
    out["dashboard --out"] = run(cmd_dashboard, out=None, json=False)
    with app.store.read() as s:
        rows = list(s.scalars(select(Message)))
        out["messages table"] = "\n".join(
            f"{m.to_addrs} {m.cc_addrs} {m.subject} {m.body} {m.body_full} {m.raw.decode('utf-8', 'replace')}"
            for m in rows)
        out["outbox table"] = "\n".join(i.mime.decode("utf-8", "replace") + str(i.recipients)
                                        for i in s.scalars(select(OutboxItem)))
        from tickets.models import Event

        out["events"] = "\n".join(f"{e.detail} {e.data}" for e in s.scalars(select(Event)))
    return out


def test_secret_rotate_from_the_command_line(tmp_path):
    """As an operator runs it: one line, exit 0; with the secret in the environment one line, exit 2."""
    from test_cli import hypercare

    rotated = hypercare("secret", "rotate", cwd=tmp_path, env={"HYPERCARE_REPLY_SECRET": ""})
    assert rotated.returncode == 0, rotated.stderr
    assert "reply secret rotated; earlier signed reply addresses keep working until" in rotated.stdout.decode()
    now = hypercare("secret", "rotate", "--no-grace", cwd=tmp_path, env={"HYPERCARE_REPLY_SECRET": ""})
    assert now.returncode == 0 and "stopped working now" in now.stdout.decode()
    refused = hypercare("secret", "rotate", cwd=tmp_path, env={"HYPERCARE_REPLY_SECRET": "e" * 40})
    lines = refused.stderr.decode().strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "HYPERCARE_REPLY_SECRET_PREVIOUS" in lines[0]


def test_a_new_request_naming_a_signed_address_is_stored_redacted(desk, clock):
    """Someone pastes a team member's Reply-To into a new request: no stored or shown copy keeps the token."""
    key, ada_address = _escalated_p3(desk, clock)
    token = ada_address.split(".", 1)[1].split("@")[0]
    for i in range(3):  # several at once, as a busy intake stores them (one batch)
        desk.send(mail(sender=f"otto{i}@customer.example", to=SUPPORT, subject=f"Question {i}",
                       body=f"Our admin said to write to {ada_address} about {key}."), SUPPORT,
                  f"otto{i}@customer.example")
    with desk.app.store.read() as s:
        rows = list(s.scalars(select(Message).where(Message.direction == "in")))
        assert len(rows) == 4
        for m in rows:
            assert token not in f"{m.body} {m.body_full} {m.subject} {m.to_addrs} {m.raw.decode('utf-8', 'replace')}"
