"""The escalation ladder and the team-mail contents on SQLite and PostgreSQL: the new-P1 page,
catching up, idempotency under two instances, severity cycles, refusals, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from desk_kit import (
    ADA,
    OLGA,
    P1_MAIL,
    P2_MAIL,
    P3_MAIL,
    PAM,
    REPORTER,
    TIM,
    desk_config,
    events,
    outbox,
    report,
    signed_address,
    team_reply,
    ticket,
)
from mailkit import make_mail, parse
from sqlalchemy import func, select

from notifier.escalation import BREACH, ON_CALL, ROLE, tier_for
from tickets.models import Escalation
from tickets.response_clock import format_duration

ROOT = Path(__file__).resolve().parents[1]


def _mail(item):  # type: ignore[no-untyped-def]
    msg = parse(item.mime)
    return msg, msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_new_p1_pages_role_on_call_and_managers_at_once_in_the_same_transaction(make_app, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P1_MAIL)
    pages = outbox(app, "escalation")
    # One mail per member: each Reply-To is that member's own credential.
    assert sorted(p.idempotency_key for p in pages) == sorted(
        f"escalation:{key}:0:p1-new>{m.email}" for m in (TIM, OLGA, PAM))
    assert sorted(r for p in pages for r in p.recipients) == sorted([TIM.email, OLGA.email, PAM.email])
    page = pages[0]
    [event] = events(app, key, "escalated")
    assert event.data["level"] == "p1-new" and event.data["tier"] == "breach"
    assert app.escalator.sweep().escalated == []  # the sweep does not page again at 0 %
    msg, text, html = _mail(page)
    assert msg["Subject"] == f"[{key}] New P1: P1 {P1_MAIL[0]}"
    assert msg["Reply-To"] == app.tokens.unsigned_address(key)  # stored unsigned; signed when sent
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "1 h left" in text and "outage" in text and "Nobody can log in since 8:00" in text
    assert "#resolve [resolution text]" in text and "#severity P1|P2|P3|P4" in text
    assert "<strong>outage</strong>" in html and "Thread so far" in html


_REFUSE_P1_PAGES = {
    "sqlite": ["CREATE TRIGGER refuse_page BEFORE INSERT ON outbox WHEN NEW.idempotency_key LIKE 'escalation:%' "
               "BEGIN SELECT RAISE(ABORT, 'injected refusal'); END"],
    # psycopg reads % as a placeholder: %% is one percent sign.
    "postgresql": ["CREATE FUNCTION refuse_page() RETURNS trigger AS $$ BEGIN IF NEW.idempotency_key LIKE "
                   "'escalation:%%' THEN RAISE unique_violation USING MESSAGE = 'injected refusal'; END IF; "
                   "RETURN NEW; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER refuse_page BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse_page()"],
}


def test_a_uniqueness_error_that_is_not_the_level_is_logged_as_not_queued(make_app, clock, tmp_path, db_url,
                                                                        caplog):
    """Only a recorded level is "already recorded"; any other uniqueness error (here a trigger standing in for
    a conflicting row) left no page queued, and the log says so instead of calling it done."""
    app = make_app(desk_config(tmp_path, db_url=db_url))
    with app.store.engine.begin() as conn:
        for statement in _REFUSE_P1_PAGES[app.store.engine.dialect.name]:
            conn.exec_driver_sql(statement)
    caplog.set_level("INFO", logger="hypercare.escalation")
    key = report(app, P1_MAIL)
    assert outbox(app, "escalation") == [] and _escalation_rows(app) == []
    assert f"{key} escalation level=p1-new cycle=0 NOT queued: injected refusal" in caplog.text
    assert "already recorded" not in caplog.text
    with app.store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_page" + (" ON outbox" if "postgresql" in db_url else ""))
    clock.advance(minutes=30)
    [first] = app.escalator.sweep().escalated  # the ladder's first level is the next page
    assert first.key == key and first.level == "0.5"


def test_escalation_mail_shows_overdue_thread_and_escapes_html(make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, ("<b>Sync</b> to ERP failing", P2_MAIL[1]))
    clock.advance(hours=1)
    app.pipeline.ingest(make_mail(subject=f"Re: [{key}] sync", body="Still failing <script>x</script>.",
                                  sender=REPORTER, to="support@example.com"))
    clock.advance(hours=3, minutes=25)
    [sent] = app.escalator.sweep().escalated
    assert sent.level == "1.0" and sent.skipped == ("0.5", "0.8")
    page = outbox(app, "escalation")[0]
    msg, text, html = _mail(page)
    assert "SLA breached (100%)" in msg["Subject"] and "overdue by 25 min" in text
    assert "Still failing <script>x</script>." in text and "orders are not transferred" in text
    assert "&lt;script&gt;" in html and "<script>" not in html and "&lt;b&gt;Sync" in html
    rows = _escalation_rows(app)
    assert [(r.level, bool(r.recipients)) for r in rows] == [("0.5", False), ("0.8", False), ("1.0", True)]


def _escalation_rows(app):  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return list(s.scalars(select(Escalation).order_by(Escalation.id)))


def test_answered_resolved_and_paused_tickets_do_not_escalate(make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url, incidents=False))
    answered = report(app, P2_MAIL, sender="a@customer.example")
    resolved = report(app, P2_MAIL, sender="b@customer.example")
    paused = report(app, P2_MAIL, sender="c@customer.example")
    running = report(app, P2_MAIL, sender="d@customer.example")
    team_reply(app, answered, "We are on it.", sender=TIM.email)
    team_reply(app, resolved, "#resolve duplicate of the other one", sender=TIM.email)
    team_reply(app, paused, "#wait", sender=TIM.email)
    clock.advance(hours=5)
    report_ = app.escalator.sweep()
    assert report_.checked == 1 and [e.key for e in report_.escalated] == [running]
    assert ticket(app, answered).response_met is True and ticket(app, resolved).response_met is True


def test_severity_change_starts_a_new_cycle_and_raise_to_p1_pages(make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P3_MAIL)  # Mon 10:00 CET, P3 crm_admin: due Tue 10:00
    clock.advance(hours=4)
    assert [e.level for e in app.escalator.sweep().escalated] == ["0.5"]
    team_reply(app, key, "#severity P2")  # due now created + 4 h = 13:00 UTC = now: breach in cycle 1
    t = ticket(app, key)
    assert t.severity == "P2" and t.response_due == t.created_at + timedelta(hours=4)
    [sent] = app.escalator.sweep().escalated
    assert (sent.cycle, sent.level, sent.skipped) == (1, "1.0", ("0.5", "0.8"))
    team_reply(app, key, "#severity P1")
    pages = [i for i in outbox(app, "escalation") if ":p1-new>" in i.idempotency_key]
    assert {p.idempotency_key.split(">")[0] for p in pages} == {f"escalation:{key}:2:p1-new"}
    assert sorted(r for p in pages for r in p.recipients) == sorted([ADA.email, OLGA.email, PAM.email])


def test_two_instances_sweeping_at_once_escalate_each_level_once(make_app, clock, tmp_path, db_url):
    config = desk_config(tmp_path, db_url=db_url, incidents=False)
    first = make_app(config)
    keys = [report(first, P2_MAIL, sender=f"u{i}@customer.example") for i in range(6)]
    apps = [first, make_app(config), make_app(config)]
    for app in apps:
        app.escalator  # noqa: B018 - build everything before the race
    clock.advance(hours=2)
    barrier = threading.Barrier(len(apps))
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def sweep(app) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait()
            results.append([e.key for e in app.escalator.sweep().escalated])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(app,)) for app in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(k for r in results for k in r) == sorted(keys)
    with first.store.read() as s:
        assert s.scalar(select(func.count()).select_from(Escalation)) == len(keys)
    assert len(outbox(first, "escalation")) == len(keys)


def test_unknown_command_refuses_the_whole_reply_and_says_why(make_app, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P2_MAIL)
    before = ticket(app, key)
    result = team_reply(app, key, "#ack\n#reslove fixed\n\nIt works again.", sender=TIM.email)
    assert result.action == "comment"
    after = ticket(app, key)
    assert (after.status, after.assignee, after.first_response_at) == (before.status, None, None)
    assert not [i for i in outbox(app) if i.kind == "answer"]
    [refusal] = outbox(app, "refusal")
    msg, text, _ = _mail(refusal)
    assert refusal.recipients == [TIM.email] and "Not done" in msg["Subject"]
    assert "unknown command #reslove" in text and "Nothing was changed" in text
    assert "It works again" not in text  # the refused reply is never quoted back
    assert msg["Reply-To"] == app.tokens.unsigned_address(key)


def test_command_without_authority_is_reported(make_app, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P3_MAIL)
    team_reply(app, key, "#assign nobody@example.com\n#ack")
    [confirmation] = outbox(app, "confirmation")
    _, text, _ = _mail(confirmation)
    assert "Partly done" in parse(confirmation.mime)["Subject"]
    assert "nobody@example.com is not a team member" in text and "acknowledged" in text
    assert ticket(app, key).assignee == ADA.email  # #ack took it; the unknown person did not


def test_redelivered_team_reply_acts_once(make_app, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P2_MAIL)
    raw = make_mail(subject=f"Re: [{key}]", body="#resolve done", sender=TIM.email,
                    to=signed_address(app, key, TIM.email), message_id="tim-1@example.com")
    assert app.pipeline.ingest(raw).action == "command"
    assert app.pipeline.ingest(raw).action == "duplicate"
    assert len(outbox(app, "resolved")) == 1 and len(events(app, key, "resolved")) == 1


def test_tiers_by_level():
    levels = (0.25, 0.5, 0.8, 1.0, 1.5)
    assert [tier_for(x, levels) for x in levels] == [ROLE, ON_CALL, ON_CALL, BREACH, BREACH]
    assert tier_for(0.5, (0.5, 0.8, 1.0)) == ROLE and tier_for(1.0, (1.0,)) == BREACH
    assert [format_duration(s) for s in (0, 59, 3600, 5400, 90000)] == ["0 min", "1 min", "1 h", "1 h 30 min",
                                                                         "1 d 1 h"]


def test_cli_sla_sweep_and_tick(tmp_path):
    (tmp_path / "hypercare.toml").write_text(
        '[support]\naddress = "support@example.com"\n'
        '[hypercare]\ntimezone = "Europe/Berlin"\ngo_live = "2026-11-23"\n'
        '[[team]]\nname = "Tim"\nemail = "tim@example.com"\nroles = ["technical_consultant"]\n'
        '[[team]]\nname = "Olga"\nemail = "olga@example.com"\nroles = ["business_analyst"]\non_call = true\n')
    (tmp_path / "req.eml").write_bytes(make_mail(subject=P2_MAIL[0], body=P2_MAIL[1], to="support@example.com"))

    def run(*args: str):  # type: ignore[no-untyped-def]
        return subprocess.run([sys.executable, str(ROOT / "service.py"), *args], cwd=tmp_path,
                              capture_output=True, timeout=120, env={"PATH": "/usr/bin:/bin"})

    assert run("ingest", "req.eml", "--now", "2026-11-23T09:00:00Z").returncode == 0
    early = run("sla", "sweep", "--now", "2026-11-23T10:59:00Z")
    assert early.returncode == 0 and early.stdout.decode().splitlines() == [
        "response: checked 1, escalated 0, errors 0", "resolution: checked 1, escalated 0, errors 0"]
    swept = run("sla", "sweep", "--now", "2026-11-23T11:30:00Z")
    assert "HC-1 escalated level=0.5 cycle=0 to tim@example.com" in swept.stdout.decode()
    tick = run("tick", "--now", "2026-11-23T12:20:00Z")
    assert tick.returncode == 0, tick.stderr.decode()
    assert "sla: response: checked 1, escalated 1, errors 0; resolution: checked 1" in tick.stdout.decode()
    shown = json.loads(run("show", "HC-1", "--json").stdout)
    assert [e["detail"] for e in shown["events"] if e["kind"] == "escalated"] == [
        "Escalation 50%: tim@example.com", "Escalation 80%: tim@example.com, olga@example.com"]


def test_without_a_team_levels_are_recorded_but_nobody_is_mailed(make_app, clock, tmp_path, db_url):
    from config import Config, DatabaseSettings

    app = make_app(Config(base_dir=tmp_path, database=DatabaseSettings(url=db_url)))
    key = report(app, P1_MAIL, sender=REPORTER).strip()
    clock.advance(minutes=30)
    [sent] = app.escalator.sweep().escalated
    assert sent.recipients == () and "nobody" in sent.line()
    assert [(r.level, r.recipients) for r in _escalation_rows(app)] == [("p1-new", []), ("0.5", [])]
    assert outbox(app, "escalation") == [] and events(app, key, "escalated") == []


def test_a_failing_ticket_is_retried_next_sweep_and_does_not_stop_the_others(make_app, clock, tmp_path, db_url,
                                                                              monkeypatch):
    app = make_app(desk_config(tmp_path, db_url=db_url, incidents=False))
    broken, fine = report(app, P2_MAIL, sender="a@customer.example"), report(app, P2_MAIL, sender="b@customer.example")
    original = app.escalator.notices.enqueue

    def flaky(session, ticket, **kwargs):  # type: ignore[no-untyped-def]
        if ticket.key == broken:
            raise RuntimeError("template exploded")
        return original(session, ticket, **kwargs)

    monkeypatch.setattr(app.escalator.notices, "enqueue", flaky)
    clock.advance(hours=2)
    first = app.escalator.sweep()
    assert [e.key for e in first.escalated] == [fine] and first.errors == [f"{broken}: RuntimeError: template exploded"]
    assert [r.level for r in _escalation_rows(app)] == ["0.5"]  # nothing recorded for the broken one
    monkeypatch.setattr(app.escalator.notices, "enqueue", original)
    assert [e.key for e in app.escalator.sweep().escalated] == [broken]
