"""Issue 14, "the ladder listens": a first response ends the response ladder, resolution has its own
ladder, a P4 before its sprint is scheduled (never breached), and "Done:" mails are off by default.

Real ingest path in, real relay out, FrozenClock; SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from desk_kit import (
    ADA,
    OLGA,
    P1_MAIL,
    P2_MAIL,
    PAM,
    TIM,
    by_subject,
    desk_config,
    events,
    flush,
    outbox,
    report,
    signed_address,
    team_reply,
    ticket,
)

from config import NotifierSettings
from config.sections import SECTIONS, Reader
from core.errors import UserError

BERLIN = ZoneInfo("Europe/Berlin")
P4_MAIL = ("Feature request: export button", "It would be nice to have an export to Excel button on the list.")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


@pytest.mark.parametrize("command", ["#ack", "#wait", "Hello Maria, we are looking at it."])
def test_a_first_response_ends_the_response_ladder(make_app, clock, tmp_path, db_url, command):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P2_MAIL)  # 09:00 UTC, first response due 13:00
    clock.advance(hours=1, minutes=41)  # "acknowledged at 10:41"
    assert team_reply(app, key, command, sender=TIM.email).action == "command"
    t = ticket(app, key)
    assert t.first_response_at == clock.now() and t.response_met is True
    [first] = events(app, key, "first_response")
    assert first.actor == TIM.email
    for hours in (1, 2, 3, 30):  # "... still escalated to two people at 11:53": not any more
        clock.advance(hours=hours)
        assert app.escalator.sweep().escalated == []
    assert outbox(app, "escalation") == []


def test_without_a_response_the_ladder_still_runs(make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P2_MAIL)
    team_reply(app, key, "#note looking into the SAP logs", sender=TIM.email)  # internal: not a response
    clock.advance(hours=2)
    assert [e.level for e in app.escalator.sweep().escalated] == ["0.5"]
    assert ticket(app, key).first_response_at is None


def test_resolution_ladder_chases_an_acknowledged_p1_to_the_owner_then_the_pm(make_app, clock, tmp_path, relay,
                                                                             db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P1_MAIL)  # Mon 23 Nov 10:00 Berlin; resolution due the same business day, 17:00
    assert ticket(app, key).resolution_due == berlin(2026, 11, 23, 17, 0)
    clock.advance(minutes=20)
    team_reply(app, key, "#ack", sender=TIM.email)
    flush(app)
    relay.deliveries.clear()
    # 80 % of 10:00-17:00 (7 business hours) = 15:36 Berlin.
    clock.set(berlin(2026, 11, 23, 15, 35))
    assert app.resolution_ladder.sweep().escalated == []
    clock.set(berlin(2026, 11, 23, 15, 36))
    [owner] = app.resolution_ladder.sweep().escalated
    assert owner.level == "res-0.8" and owner.recipients == (TIM.email,)  # the assignee, not on-call, no PM
    assert app.resolution_ladder.sweep().escalated == [] and app.escalator.sweep().escalated == []
    clock.set(berlin(2026, 11, 24, 8, 0))  # "an acknowledged P1 that stays open for 21 hours"
    [breach] = app.resolution_ladder.sweep().escalated
    assert breach.level == "res-1.0" and set(breach.recipients) == {TIM.email, PAM.email}
    app2 = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))  # a second instance: nothing twice
    assert app2.resolution_ladder.sweep().escalated == []
    flush(app)
    subjects = by_subject(relay.deliveries)
    assert subjects == [
        (f"[{key}] Resolution 80%: P1 {P1_MAIL[0]}", [TIM.email]),
        (f"[{key}] Resolution overdue: P1 {P1_MAIL[0]}", sorted([TIM.email, PAM.email])),
    ]
    text = relay.deliveries[1].message.get_body(("plain",)).get_content()
    assert "the same business day" in text and "overdue by 15 h" in text
    assert [e.data["level"] for e in events(app, key, "escalated")] == ["p1-new", "res-0.8", "res-1.0"]


def test_resolved_and_waiting_tickets_are_not_chased_and_the_owner_is_the_role_without_assignee(
        make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url, incidents=False))
    resolved, waiting, open_ = (report(app, P2_MAIL, sender=f"r{i}@customer.example") for i in range(3))
    team_reply(app, resolved, "#resolve restarted the connector", sender=TIM.email)
    team_reply(app, waiting, "#wait\nCould you send the log?", sender=TIM.email)
    clock.set(berlin(2026, 11, 25, 17, 0))  # 2 business days later: 100 % for all three
    sent = app.resolution_ladder.sweep().escalated
    assert [(e.key, e.level) for e in sent] == [(open_, "res-1.0")]
    assert sent[0].skipped == ("res-0.8",) and set(sent[0].recipients) == {TIM.email, PAM.email}


def test_p4_before_its_sprint_is_scheduled_never_breached(make_app, clock, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P4_MAIL)
    t = ticket(app, key)
    assert t.severity == "P4" and t.response_due == berlin(2026, 12, 7, 9, 0)  # sprints of 14 days from go-live
    for when in (berlin(2026, 12, 1, 12, 0), berlin(2026, 12, 7, 9, 0), berlin(2026, 12, 21, 9, 0)):
        clock.set(when)
        assert app.escalator.sweep().escalated == [] and app.resolution_ladder.sweep().escalated == []
    flush(app)
    assert not [d for d in relay.deliveries if "breached" in d.message["Subject"].lower()]
    from dashboard.summary import DashboardContext, build_summary

    with app.store.read() as session:
        summary = build_summary(session, DashboardContext(app.config, app.sla, app.go_live, clock.now()))
    [row] = [r for r in summary["open_tickets"] if r["key"] == key]
    assert row["sla_state"] == "scheduled" and summary["attention"] == []


def test_done_confirmations_are_off_by_default_refusals_are_not(make_app, clock, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P2_MAIL)
    flush(app)
    relay.deliveries.clear()
    team_reply(app, key, "#ack", sender=TIM.email)
    team_reply(app, key, "#ack", sender=TIM.email)  # already acknowledged: not done, so the member is told
    team_reply(app, key, "#severity P9", sender=TIM.email)  # unreadable: refused, the member is told
    flush(app)
    assert [d.message["Subject"].split(":")[0] for d in relay.deliveries] == [f"[{key}] Not done"] * 2
    # confirmations = "all" brings the "Done:" mails back.
    config = dataclasses.replace(desk_config(tmp_path, relay=relay, db_url=db_url),
                                 notifier=NotifierSettings(confirmations="all"))
    app = make_app(config)
    relay.deliveries.clear()
    team_reply(app, key, "#note checked the logs", sender=ADA.email)
    flush(app)
    [done] = relay.deliveries
    assert done.message["Subject"].startswith(f"[{key}] Done") and done.recipients == [ADA.email]


@pytest.mark.parametrize("raw, where", [
    ({"sla": {"resolution_escalate_at": "soon"}}, "[sla] resolution_escalate_at"),
    ({"sla": {"resolution_escalate_at": [True]}}, "[sla] resolution_escalate_at"),
    ({"sla": {"resolution_escalate_at": []}}, "[sla] resolution_escalate_at"),
    ({"sla": {"resolution": {"P1": 3}}}, "[sla.resolution] P1"),
    ({"sla": {"resolution": {"P5": "1h"}}}, "[sla.resolution] P5"),
    ({"notifier": {"confirmations": "sometimes\x00\r\n"}}, "[notifier] confirmations"),
    ({"incidents": {"window_minutes": -1}}, "[incidents] window_minutes"),
    ({"incidents": {"window_minutes": True}}, "[incidents] window_minutes"),
    ({"incidents": {"window_minutes": 10**12}}, "[incidents] window_minutes"),
    ({"incidents": {"min_shared_terms": "1"}}, "[incidents] min_shared_terms"),
    ({"incidents": {"enabled": "yes\x00"}}, "[incidents] enabled"),
    ({"incidents": {"windw_minutes": 5}}, "[incidents] windw_minutes"),
])
def test_hostile_config_values_are_one_line_errors(raw, where):
    section, value = next(iter(raw.items()))
    with pytest.raises(UserError) as info:
        SECTIONS[section](Reader("hypercare.toml"), value)
    assert where in str(info.value) and "\n" not in str(info.value).strip()


def test_a_hostile_resolution_target_fails_at_start(make_app, tmp_path):
    from config import SlaSettings
    from tickets.sla import SlaConfigError

    bad = dataclasses.replace(SlaSettings(), resolution={"P1": "same business day\x00" + "x" * 10_000})
    config = dataclasses.replace(desk_config(tmp_path), sla=bad)
    with pytest.raises(SlaConfigError, match=r"\[sla.resolution\] P1"):
        _ = make_app(config).sla


def test_olga_on_call_is_not_on_the_resolution_ladder(make_app, clock, tmp_path, db_url):
    """The resolution ladder goes to the owner and the PMs; on-call is for the response ladder only."""
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P2_MAIL)
    clock.set(berlin(2026, 11, 25, 17, 0) + timedelta(minutes=1))
    recipients = {r for e in app.resolution_ladder.sweep().escalated for r in e.recipients}
    assert OLGA.email not in recipients and events(app, key, "escalated")


def test_every_new_ticket_reaches_its_owner_at_creation(make_app, clock, tmp_path, relay, db_url):
    """A triage notice to the role's members (reasons, commands, signed Reply-To); a P1 keeps its one page."""
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    p2, p4, p1 = report(app, P2_MAIL), report(app, P4_MAIL), report(app, P1_MAIL)
    app.triage.sweep()  # the next beat (15 s in `run`): tickets the batched write path stored are triaged there
    flush(app)
    team = {d.message["Subject"]: (sorted(d.recipients), d) for d in relay.deliveries
            if "customer" not in d.recipients[0]}
    to, notice = team[f"[{p2}] New P2: P2 {P2_MAIL[0]}"]
    assert to == [TIM.email] and notice.message["Reply-To"] == signed_address(app, p2, TIM.email)
    body = notice.message.get_body(("plain",)).get_content()
    assert "Why the classifier chose this" in body and "integration-failure" in body and "#ack" in body
    assert "first response within 4 hours" in body
    [(p4_to, p4_notice)] = [v for k, v in team.items() if k.startswith(f"[{p4}] New P4")]
    assert "scheduled for the next sprint" in p4_notice.message.get_body(("plain",)).get_content()
    assert [k for k in team if k.startswith(f"[{p1}]")] == [f"[{p1}] New P1: P1 {P1_MAIL[0]}"]  # the page only
    assert [e.data["recipients"] for e in events(app, p2, "triaged")] == [[TIM.email]]
    assert [i.idempotency_key for i in outbox(app, "triage") if i.ticket_id == ticket(app, p2).id] == [
        f"triage:{p2}>{TIM.email}"]  # once, one copy per member, filed under its ticket
