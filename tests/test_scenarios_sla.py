"""Whole timelines on the FrozenClock: mail in through the real ingest path, mail out through the
real aiosmtpd relay, on SQLite and PostgreSQL.  Nothing sleeps; the clock is moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from desk_kit import (
    ADA,
    OLGA,
    P2_MAIL,
    P3_MAIL,
    PAM,
    REPORTER,
    TIM,
    by_subject,
    desk_config,
    events,
    flush,
    outbox,
    report,
    signed_address,
    team_reply,
    text_of,
    ticket,
)
from mailkit import make_mail

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


def escalations(relay) -> list[tuple[str, list[str]]]:  # type: ignore[no-untyped-def]
    """(subject, envelope recipients) of every escalation that reached the relay."""
    return [(subject, to) for subject, to in by_subject(relay.deliveries)
            if "Escalation" in subject or "SLA breached" in subject or "New P1" in subject]


@pytest.mark.parametrize("reported, due, extra", [
    # Friday before the end of summer time (25 Oct 2026): 1 h on Friday, 7 h on Monday, in CET.
    ((2026, 10, 23, 16, 0), (2026, 10, 26, 16, 0), ()),
    # Christmas Eve is a working day, 25 Dec (a public holiday in DE) and the weekend are not.
    ((2026, 12, 24, 16, 0), (2026, 12, 28, 16, 0), ()),
    # DST weekend and an extra company holiday on the Monday.
    ((2026, 10, 23, 16, 0), (2026, 10, 27, 16, 0), ("2026-10-26",)),
])
def test_p3_reported_friday_1600_due_next_business_day_1600(make_app, clock, tmp_path, relay, db_url,
                                                            reported, due, extra):
    from config import parse_date

    config = desk_config(tmp_path, relay=relay, db_url=db_url, go_live=datetime(*reported[:3]).date(),
                         extra_holidays=tuple(parse_date(d) for d in extra))
    app = make_app(config)
    clock.set(berlin(*reported))
    key = report(app, P3_MAIL)
    t = ticket(app, key)
    assert (t.severity, t.role) == ("P3", "crm_admin")
    assert t.response_due == berlin(*due)
    app.triage.sweep()  # the next beat: a ticket stored by the batched write path is triaged there
    flush(app)
    [ack] = [d for d in relay.deliveries if d.recipients == [REPORTER]]
    [triage] = [d for d in relay.deliveries if d.recipients == [ADA.email]]  # the owner knows at once
    assert triage.message["Subject"] == f"[{key}] New P3: P3 {P3_MAIL[0]}"
    due_text = berlin(*due).astimezone(BERLIN).strftime("%d %b %Y 16:00")
    assert "1 business day" in text_of(ack) and due_text in text_of(ack)

    # Over the weekend (and the holiday) nothing escalates: the clock does not run.
    clock.set(berlin(*due) - timedelta(hours=8))  # 08:00 local on the due day: before business hours
    assert app.escalator.sweep().escalated == []
    # 50 % = 4 business hours in: 1 h on the first day, then 3 h from 09:00 -> 12:00 on the due day.
    clock.set(berlin(*due) - timedelta(hours=4, seconds=1))
    assert app.escalator.sweep().escalated == []
    clock.set(berlin(*due) - timedelta(hours=4))
    assert [e.level for e in app.escalator.sweep().escalated] == ["0.5"]
    clock.set(berlin(*due))
    assert [e.level for e in app.escalator.sweep().escalated] == ["1.0"]  # 0.8 skipped: swept late
    flush(app)
    assert [s for s, _ in escalations(relay)] == [f"[{key}] Escalation 50%: P3 {P3_MAIL[0]}",
                                                  f"[{key}] SLA breached (100%): P3 {P3_MAIL[0]}"]


def test_p2_escalates_at_50_80_100_exactly_once_each_across_restarts(make_app, clock, tmp_path, relay, db_url):
    config = desk_config(tmp_path, relay=relay, db_url=db_url)
    app = make_app(config)
    key = report(app, P2_MAIL)  # Mon 23 Nov 09:00 UTC, P2 technical_consultant, due 13:00 UTC
    assert ticket(app, key).response_due == clock.now() + timedelta(hours=4)
    start = clock.now()

    def beat(app, minutes: float) -> list[str]:  # type: ignore[no-untyped-def]
        clock.set(start + timedelta(minutes=minutes))
        levels = [e.level for e in app.escalator.sweep().escalated]
        flush(app)
        return levels

    assert beat(app, 119) == []
    assert beat(app, 120) == ["0.5"]
    assert beat(app, 121) == []
    app = make_app(config)  # restart: a new App on the same database
    assert beat(app, 191) == []
    assert beat(app, 192) == ["0.8"]  # 80 % of 240 min
    second = make_app(config)  # a second instance sweeping the same database
    assert beat(second, 193) == [] and beat(app, 194) == []
    app = make_app(config)
    assert beat(app, 239) == []
    assert beat(app, 240) == ["1.0"]
    assert beat(second, 300) == [] and beat(app, 24 * 60) == []

    assert escalations(relay) == [
        (f"[{key}] Escalation 50%: P2 {P2_MAIL[0]}", [TIM.email]),
        (f"[{key}] Escalation 80%: P2 {P2_MAIL[0]}", sorted([TIM.email, OLGA.email])),
        (f"[{key}] SLA breached (100%): P2 {P2_MAIL[0]}", sorted([TIM.email, OLGA.email, PAM.email])),
    ]
    assert list(dict.fromkeys(i.idempotency_key.split(">")[0] for i in outbox(app, "escalation"))) == [
        f"escalation:{key}:0:0.5", f"escalation:{key}:0:0.8", f"escalation:{key}:0:1.0"]
    assert [e.data["level"] for e in events(app, key, "escalated")] == ["0.5", "0.8", "1.0"]


def test_wait_is_a_first_response_and_the_pause_is_given_back_to_resolution(make_app, clock, tmp_path, relay,
                                                                            db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P2_MAIL)  # Mon 23 Nov 09:00 UTC, due 13:00; resolution due in 2 business days
    start = clock.now()
    resolution_due = ticket(app, key).resolution_due
    clock.set(start + timedelta(hours=1))
    assert team_reply(app, key, "#wait", sender=TIM.email).action == "command"
    t = ticket(app, key)
    assert t.status == "waiting_on_customer" and t.paused_at == clock.now()
    # Issue 14: #wait is a first response, so the response ladder is over for this ticket.
    assert t.first_response_at == clock.now() and t.response_met is True
    clock.set(start + timedelta(hours=3))
    assert app.escalator.sweep().escalated == [] and app.resolution_ladder.sweep().escalated == []
    clock.set(start + timedelta(hours=4))  # the reporter answers after a 3 h pause
    result = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] {P2_MAIL[0]}", body="Here is the log.",
                                           sender=REPORTER, to="support@example.com"))
    assert result.action == "threaded"
    t = ticket(app, key)
    assert t.status == "in_progress" and t.paused_at is None
    assert t.resolution_due == resolution_due + timedelta(hours=3)  # the wait is given back
    assert [e.kind for e in t.events if e.kind in ("paused", "resumed")] == ["paused", "resumed"]
    clock.set(start + timedelta(days=2))
    assert app.escalator.sweep().escalated == []  # never again: the first response was given


def test_reassignment_notifies_the_new_role_and_moves_the_ladder(make_app, clock, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P3_MAIL)  # crm_admin
    flush(app)
    relay.deliveries.clear()
    clock.advance(minutes=30)
    assert team_reply(app, key, "#assign technical_consultant").action == "command"
    t = ticket(app, key)
    assert t.role == "technical_consultant" and t.original_role == "crm_admin"
    [change] = events(app, key, "role_changed")
    assert change.actor == ADA.email
    assert (change.data["from"], change.data["to"]) == ("crm_admin", "technical_consultant")
    assert change.message_id is not None and change.at == clock.now()
    flush(app)
    by_to = {tuple(d.recipients): d for d in relay.deliveries}
    notice = by_to[(TIM.email,)]
    assert notice.message["Subject"].startswith(f"[{key}] Assigned to you")
    assert notice.message["Reply-To"] == signed_address(app, key, TIM.email)
    assert "Ada Admin assigned" in text_of(notice) and "Technical consultant" in text_of(notice)
    assert (ADA.email,) not in by_to  # no "Done:" mail by default ([notifier] confirmations = "problems")
    assert REPORTER not in {r for d in relay.deliveries for r in d.recipients}
    # Assign to a person: they are told; the ladder now goes to the new role and the assignee.
    assert team_reply(app, key, f"#assign {PAM.email}").action == "command"
    assert ticket(app, key).assignee == PAM.email
    clock.set(ticket(app, key).response_due)
    [sent] = app.escalator.sweep().escalated
    assert sent.level == "1.0" and set(sent.recipients) == {TIM.email, PAM.email, OLGA.email}


def test_team_replies_with_token_act_and_the_reporter_sees_name_not_address(make_app, clock, tmp_path, relay,
                                                                            db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url, reopen_days=7))
    key = report(app, P2_MAIL, message_id="req@customer.example")
    flush(app)
    relay.deliveries.clear()
    clock.advance(minutes=30)
    result = team_reply(app, key, "#ACK\n#severity P1\n\nHello Maria,\nwe restart the connector now.",
                        sender=TIM.email)
    assert (result.action, result.key) == ("command", key)
    t = ticket(app, key)
    assert (t.status, t.severity, t.assignee) == ("in_progress", "P1", TIM.email)
    assert t.first_response_at == clock.now() and t.response_met is True and t.response_elapsed_seconds == 1800
    assert t.response_due == t.created_at + timedelta(hours=1)  # recomputed for P1
    [sev] = events(app, key, "severity_changed")
    assert sev.data == {"from": "P2", "to": "P1", "original": "P2", "cycle": 1} and sev.actor == TIM.email
    flush(app)
    [answer] = [d for d in relay.deliveries if d.recipients == [REPORTER]]
    assert answer.message["From"] == '"Tim Tech (CRM Hypercare Support)" <support@example.com>'
    assert answer.message["Subject"] == f"Re: [{key}] {P2_MAIL[0]}"
    assert answer.message["In-Reply-To"] == "<req@customer.example>"
    body = text_of(answer)
    assert "we restart the connector now." in body and "Tim Tech" in body
    assert TIM.email not in answer.data.decode() and "wrote:" not in body and "#ACK" not in body
    assert f"support+{key}." not in answer.data.decode()  # the reporter never sees a signed address
    assert not [d for d in relay.deliveries if d.recipients == [TIM.email]]  # no "Done:" mail by default
    assert [e.kind for e in events(app, key) if e.actor == TIM.email][:3] == [
        "severity_changed", "acknowledged", "first_response"]
    assert not [d for d in relay.deliveries if "New P1" in d.message["Subject"]]  # answered: no P1 page

    # Resolve; the reporter gets the text and may reopen within reopen_days.
    relay.deliveries.clear()
    clock.advance(hours=1)
    team_reply(app, key, "#resolve Restarted the ERP connector; the 312 queued orders were transferred.",
               sender=TIM.email)
    t = ticket(app, key)
    assert t.status == "resolved" and t.resolved_at == clock.now() and "312 queued orders" in t.resolution
    flush(app)
    [notice] = [d for d in relay.deliveries if d.recipients == [REPORTER]]
    assert notice.message["Subject"] == f"[{key}] Resolved: {P2_MAIL[0]}"
    assert "312 queued orders were transferred" in text_of(notice) and "within 7 days" in text_of(notice)
    clock.advance(days=6)
    reopened = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] Resolved", body="It fails again.",
                                             sender=REPORTER, to="support@example.com"))
    assert (reopened.action, reopened.key) == ("reopened", key)
    team_reply(app, key, "#resolve Fixed the mapping too.", sender=TIM.email)
    clock.advance(days=8)
    late = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] Resolved", body="Again broken.",
                                         sender=REPORTER, to="support@example.com"))
    assert late.action == "created" and late.key != key and f"linked to {key}" in late.detail
    assert ticket(app, key).status == "resolved" and ticket(app, key).reopened_count == 1


def test_note_is_internal_and_wait_with_text_asks_the_reporter(make_app, clock, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P2_MAIL)
    flush(app)
    relay.deliveries.clear()
    team_reply(app, key, "#note\nCustomer's SAP admin is on holiday; do not call.", sender=TIM.email)
    [note] = events(app, key, "note")
    assert "SAP admin is on holiday" in note.detail and note.actor == TIM.email
    team_reply(app, key, "#wait\nCould you send us the error message from the SAP log?", sender=TIM.email)
    t = ticket(app, key)
    assert t.status == "waiting_on_customer" and t.first_response_at is not None
    flush(app)
    to_reporter = [d for d in relay.deliveries if REPORTER in d.recipients]
    assert len(to_reporter) == 1 and "error message from the SAP log" in text_of(to_reporter[0])
    assert "holiday" not in text_of(to_reporter[0])


def _state(app, key):  # type: ignore[no-untyped-def]
    t = ticket(app, key)
    return (t.status, t.severity, t.role, t.assignee, t.response_due, t.first_response_at, t.resolved_at)


def test_forged_replies_change_nothing(make_app, clock, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P2_MAIL)
    other = report(app, P3_MAIL, sender="otto@customer.example")
    flush(app)
    relay.deliveries.clear()
    before, before_other = _state(app, key), _state(app, other)
    other_token = signed_address(app, other).split(".")[1].split("@")[0]
    attempts = {
        "wrong token": dict(to=f"support+{key}.{'0' * 29}@example.com"),
        "stranger with valid token": dict(sender="mallory@evil.example", name="Mallory"),
        "team member without token": dict(to="support@example.com"),
        "replayed token of another ticket": dict(to=signed_address(app, other).replace(other, key)),
        "replayed token in subject": dict(to="support@example.com", subject=f"Re: [{key}.{other_token}] escalation"),
    }
    for what, kwargs in attempts.items():
        result = team_reply(app, key, "#resolve all fine\n#severity P4\n#assign project_manager\n\nClosing this.",
                            **kwargs)
        assert result.action in ("comment", "created"), (what, result)
        assert _state(app, key) == before, what
        assert _state(app, other) == before_other, what
    flush(app)
    # Nothing reached the reporters or the stranger; the real team member was told why, once (quiet refusals).
    recipients = [r for d in relay.deliveries for r in d.recipients]
    assert REPORTER not in recipients and "otto@customer.example" not in recipients
    assert "mallory@evil.example" not in recipients
    [refusal] = [d for d in relay.deliveries if d.recipients == [ADA.email]]
    assert "Not done" in refusal.message["Subject"] and "signed reply address" in text_of(refusal)
    assert "nothing was sent to the reporter" in text_of(refusal) and "Closing this" not in text_of(refusal)
    refused = events(app, key, "refused")
    assert len(refused) == 4 and {r.actor for r in refused} == {ADA.email}
    assert [r.data["answered"] for r in refused] == [True, False, False, False]
    [comment] = events(app, key, "comment")
    assert comment.actor == "mallory@evil.example"
    assert not events(app, key, "resolved") and not events(app, key, "severity_changed")
