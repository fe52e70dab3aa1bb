"""Issue 14: P3/P4 triage notices batched into a digest per member at fixed local times.

Each listed ticket carries its own reply address, signed at send time for the one recipient; the
member acts on a ticket by writing to it.  Real ingest path, real aiosmtpd relay, FrozenClock;
SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from desk_kit import ADA, OLGA, P2_MAIL, P3_MAIL, TIM, desk_config, events, flush, outbox, report, text_of, ticket
from mailkit import make_mail
from sqlalchemy import func, select

from config import Reader, TriageSettings
from config.sections import SECTIONS
from core.errors import UserError
from intake.pipeline import RawMail
from tickets.models import Ticket

BERLIN = ZoneInfo("Europe/Berlin")
P4_MAIL = ("Feature request: export button", "It would be nice to have an export to Excel button on the list.")
ADDRESS = re.compile(r"Act:\s+(support\+(HC-\d+)\.([0-9a-z]+)@example\.com)")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def digest_app(make_app, tmp_path, relay=None, db_url=None, incidents=True, **triage):  # type: ignore[no-untyped-def]
    settings = TriageSettings(low_severity="digest", digest_times=(time(9, 0), time(14, 0)), **triage)
    config = desk_config(tmp_path, relay=relay, db_url=db_url, incidents=incidents)
    return make_app(dataclasses.replace(config, triage=settings))


def digests(relay) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {d.recipients[0]: d for d in relay.deliveries if "Triage digest" in d.message["Subject"]}


def test_p3_p4_wait_for_the_digest_and_each_ticket_has_its_own_signed_address(make_app, clock, tmp_path, relay,
                                                                            db_url):
    clock.set(berlin(2026, 11, 23, 7, 50))  # Monday, before the first slot
    app = digest_app(make_app, tmp_path, relay, db_url)
    p2, p3, p4 = report(app, P2_MAIL), report(app, P3_MAIL, sender="b@customer.example"), \
        report(app, P4_MAIL, sender="c@customer.example")
    app.triage.sweep()
    # Friday 14:00 is the latest slot: it lists what came before it (nothing); Monday's tickets wait for 09:00.
    assert app.triage_digest.run() == "2026-11-20T14:00: 0 digest(s) listing 0 ticket(s)"
    flush(app)
    team = [d for d in relay.deliveries if "customer" not in d.recipients[0]]
    assert [d.message["Subject"].split(":")[0] for d in team] == [f"[{p2}] New P2"]  # P2 at once, P3/P4 wait
    assert not events(app, p3, "triaged") and not events(app, p4, "triaged")
    relay.deliveries.clear()

    clock.set(berlin(2026, 11, 23, 9, 0, 20))
    line = app.triage_digest.run()
    assert line.startswith("2026-11-23T09:00: ")
    assert app.triage_digest.run() == "2026-11-23T09:00: sent"  # the next beat: once per slot
    flush(app)
    sent = digests(relay)
    owners = _owners(app, p3) | _owners(app, p4)
    assert set(sent) == owners and len(relay.deliveries) == len(owners)  # one digest per member
    for member, mail in sent.items():
        body = text_of(mail)
        listed = {m[2]: m[1] for m in ADDRESS.finditer(body)}
        mine = {k for k in (p3, p4) if member in _owners(app, k)}
        assert set(listed) == mine and "Why:" in body and "#ack" in body
        for key, address in listed.items():  # each address is signed for this member and this ticket
            token = ADDRESS.search(f"Act: {address}")[3]
            assert app.tokens.check(key, token, member, app.clock.now()).valid
            assert not app.tokens.check(key, token, OLGA.email if member != OLGA.email else TIM.email,
                                        app.clock.now()).valid
    stored = outbox(app, "triage_digest")
    assert all(b".unsigned@" in item.mime and b"X-Hypercare-Fill" in item.mime for item in stored)
    assert {item.idempotency_key for item in stored} == {f"triage-digest:2026-11-23T09:00>{m}" for m in owners}
    assert all(re.search(r"in the triage digest of 2026-11-23T09:00", e.detail) for e in events(app, p3, "triaged"))

    # The member acts on one ticket by writing to that ticket's address in the digest.
    member, mail = next(iter(sent.items()))
    key, address = next((m[2], m[1]) for m in ADDRESS.finditer(text_of(mail)))
    result = app.pipeline.ingest(make_mail(subject="Re: Triage digest", body="#ack\n", sender=member, to=address))
    assert result.key == key and ticket(app, key).status == "acknowledged"
    # Someone else using that address acts on nothing.
    other = ADA.email if member != ADA.email else TIM.email
    app.pipeline.ingest(make_mail(subject="Re: Triage digest", body="#resolve done\n", sender=other, to=address))
    assert ticket(app, key).status == "acknowledged"

    # A reply to the digest itself names no ticket: nothing changes, the member is told where to write (once an
    # hour), and it is no comment for the project managers.
    digest_id = mail.message["Message-ID"].strip("<>")
    for n in range(3):
        answer = app.pipeline.ingest(make_mail(subject="Re: Triage digest", body=f"#ack {key}\n", sender=member,
                                               in_reply_to=digest_id, message_id=f"dr{n}@example.com"))
        assert answer.action == "comment" and "told to write to a ticket's address" in answer.detail
    assert [i.recipients for i in outbox(app, "digest_reply")] == [[member]]
    assert outbox(app, "stakeholder_reply") == []

    # 14:00 with nothing new: no mail; Saturday: no slot (business days only), Friday's 14:00 stays the latest.
    relay.deliveries.clear()
    clock.set(berlin(2026, 11, 23, 14, 1))
    assert app.triage_digest.run() == "2026-11-23T14:00: 0 digest(s) listing 0 ticket(s)"
    clock.set(berlin(2026, 11, 28, 10, 0))
    assert app.triage_digest.run().startswith("2026-11-27T14:00: ")
    flush(app)
    assert digests(relay) == {}


def _owners(app, key: str) -> set[str]:  # type: ignore[no-untyped-def]
    from notifier.team_notice import team_members_for

    return set(team_members_for(app.config, ticket(app, key)))


def test_hostile_subjects_and_thousands_of_tickets_make_one_bounded_digest_each(make_app, clock, tmp_path, relay):
    clock.set(berlin(2026, 11, 23, 8, 0))
    # Incidents off: a thousand reports of typos would otherwise be one incident (listed once).
    app = digest_app(make_app, tmp_path, relay, incidents=False, dashboard_url="https://desk.example.com/dashboard/")

    def encoded(raw: bytes) -> str:
        return "=?utf-8?b?" + base64.b64encode(raw).decode() + "?="

    hostile = [
        encoded(b"Typo\r\nBcc: victim@evil.example\r\n\r\nhello"),
        encoded(b"Typo with NUL \x00 and \x1b[31m escape and \xe2\x80\xae RTL override"),
        "Typo " + "x" * 20_000,  # a huge subject (cut at intake, then in the digest)
        "Typo: write to support+HC-1.unsigned@example.com for a prize",  # a stranger's placeholder
    ]
    mails = [RawMail(make_mail(subject=s, body="There is a typo in the label of the account form.",
                               sender=f"h{i}@customer.example", message_id=f"h{i}@c.example"))
             for i, s in enumerate(hostile)]
    mails += [RawMail(make_mail(subject=f"Typo number {i} on the account page", body=P3_MAIL[1],
                                sender=f"u{i}@customer{i % 50}.example", message_id=f"u{i}@c.example"))
              for i in range(1500)]
    for start in range(0, len(mails), 500):
        app.pipeline.ingest_batch(mails[start:start + 500])
    flush(app)  # the acknowledgements
    relay.deliveries.clear()
    clock.set(berlin(2026, 11, 23, 9, 0, 5))
    line = app.triage_digest.run()
    with app.store.read() as session:
        low = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.severity.in_(("P3", "P4"))))
    assert low >= 1500 and line.endswith(f"listing {low} ticket(s)"), line
    flush(app)
    sent = digests(relay)
    assert sent and len(relay.deliveries) == len(sent) == len(outbox(app, "triage_digest"))
    for mail in sent.values():
        body = text_of(mail)
        assert len(mail.data) < 64_000  # bounded, whatever the slot held
        listed = len(ADDRESS.findall(body))  # how the classifier spreads the typos over roles is not the point
        assert 1 <= listed <= 50
        if listed == 50:  # the bound: the rest is counted, and the dashboard lists them all
            assert "more new tickets, not listed here" in body and "https://desk.example.com/dashboard/" in body
        assert "Bcc: victim" not in mail.message.get("Bcc", "") and mail.message["Bcc"] is None
        assert "\x00" not in body and "\x1b" not in body and "\u202e" not in body
        assert max(len(x) for x in body.splitlines()) < 200
        # The stranger's placeholder stayed a plain address: only the desk's own lines are signed.
        assert "support+HC-1.unsigned@" not in body and not re.search(r"support\+HC-1\.[0-9a-f]{29}@", body.split(
            "Act:")[0])
    assert any(len(ADDRESS.findall(text_of(mail))) == 50 for mail in sent.values())  # the bound was reached
    # Every listed or counted ticket is triaged once: the next slot does not repeat them.
    clock.set(berlin(2026, 11, 23, 14, 0, 5))
    assert app.triage_digest.run() == "2026-11-23T14:00: 0 digest(s) listing 0 ticket(s)"


@pytest.mark.parametrize("raw, where", [
    ({"low_severity": "weekly"}, "[triage] low_severity"),
    ({"low_severity": "digest\x00"}, "[triage] low_severity"),
    ({"low_severity": 1}, "[triage] low_severity"),
    ({"digest_times": "09:00"}, "[triage] digest_times"),
    ({"digest_times": []}, "[triage] digest_times"),
    ({"digest_times": ["25:00"]}, "[triage] digest_times"),
    ({"digest_times": ["9am"]}, "[triage] digest_times"),
    ({"digest_times": ["09:00\r\n14:00"]}, "[triage] digest_times"),
    ({"digest_times": ["09:00", "09:00"]}, "[triage] digest_times"),
    ({"digest_times": ["09:00"] * 5000}, "[triage] digest_times"),
    ({"digest_times": [900]}, "[triage] digest_times"),
    ({"digest_max_tickets": 0}, "[triage] digest_max_tickets"),
    ({"digest_max_tickets": 10**9}, "[triage] digest_max_tickets"),
    ({"dashboard_url": "javascript:alert(1)"}, "[triage] dashboard_url"),
    ({"dashboard_url": "https://x.example/\r\nBcc: a@b"}, "[triage] dashboard_url"),
    ({"mode": "digest"}, "[triage] mode"),
])
def test_hostile_triage_config_values_are_one_line_errors(raw, where):
    with pytest.raises(UserError) as info:
        SECTIONS["triage"](Reader("hypercare.toml"), raw)
    message = str(info.value)
    assert where in message and "\n" not in message.strip() and len(message) < 400


def test_an_unknown_mode_stops_the_command_with_exit_2(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    config = tmp_path / "hypercare.toml"
    config.write_text('[triage]\nlow_severity = "hourly"\n', encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "service.py"), "--config", str(config), "tick"],
                            capture_output=True, timeout=120, cwd=tmp_path)
    err = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(err) == 1 and "[triage] low_severity" in err[0], result.stderr


def test_the_beat_never_sends_a_missed_slot_early_and_survives_a_restart(make_app, clock, tmp_path, relay, db_url):
    """Downtime over two slots: one digest for the latest; a second App on the same database sends nothing again."""
    clock.set(berlin(2026, 11, 23, 8, 30))
    app = digest_app(make_app, tmp_path, relay, db_url)
    key = report(app, P3_MAIL)
    clock.set(berlin(2026, 11, 24, 15, 0))  # down from Monday 08:30 to Tuesday 15:00: 3 slots missed
    assert app.triage_digest.run().startswith("2026-11-24T14:00: ")
    again = digest_app(make_app, tmp_path, relay, db_url)
    assert again.triage_digest.run() == "2026-11-24T14:00: sent"
    flush(app)
    assert len(digests(relay)) == len(_owners(app, key)) and len(events(app, key, "triaged")) == 1
    clock.set(berlin(2026, 11, 25, 9, 0))  # the next slot does not list it again
    assert again.triage_digest.run() == "2026-11-25T09:00: 0 digest(s) listing 0 ticket(s)"


def test_a_uniqueness_error_that_is_not_the_slot_is_raised_and_the_next_beat_sends(make_app, clock, tmp_path, relay,
                                                                                  monkeypatch):
    """Only the slot's own ScheduleRun means "sent by another instance" (a stale id sequence must not drop it)."""
    from sqlalchemy.exc import IntegrityError

    from notifier.triage_digest import TriageDigest

    clock.set(berlin(2026, 11, 23, 8, 30))
    app = digest_app(make_app, tmp_path, relay)
    key = report(app, P3_MAIL)
    clock.set(berlin(2026, 11, 23, 9, 1))
    real_send = TriageDigest._send

    def collide(self, session, slot, now):  # type: ignore[no-untyped-def]
        real_send(self, session, slot, now)
        raise IntegrityError("INSERT INTO outbox", {}, Exception("duplicate key value violates outbox_pkey"))

    monkeypatch.setattr(TriageDigest, "_send", collide)
    with pytest.raises(IntegrityError):
        app.triage_digest.run()
    assert outbox(app, "triage_digest") == [] and not events(app, key, "triaged")  # rolled back, not recorded
    monkeypatch.setattr(TriageDigest, "_send", real_send)
    assert app.triage_digest.run().endswith("listing 1 ticket(s)")
