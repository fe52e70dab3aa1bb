"""The exit decision: a project manager's signed ``#decision`` reply or ``hypercare exit decide``;
audited, shown in the exit report and confirmed to the stakeholders."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime

import pytest
from desk_kit import ADA, P3_MAIL, PAM, desk_config, events, flush, html_of, outbox, report, team_reply, text_of
from mailkit import make_mail
from sqlalchemy import select
from test_cli import hypercare, out

from config import SmtpOutSettings, StakeholderSettings, TeamMember
from notifier.digest_cli import periodic_job
from notifier.digests import for_app
from replies.command_syntax import parse_reply_commands
from tickets.decisions import DecisionProblem, latest_decision, parse_decision
from tickets.models import ExitDecision, Message, OutboxItem


def _config(tmp_path, db_url=None):  # type: ignore[no-untyped-def]
    return dataclasses.replace(desk_config(tmp_path, db_url=db_url),
                               stakeholders=StakeholderSettings(daily=("cio@example.com",),
                                                                weekly=("sponsor@example.com",)))


def _latest(app):  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return latest_decision(s)


def test_signed_decision_reply_records_audits_and_confirms(make_app, tmp_path, clock, db_url):
    app = make_app(_config(tmp_path, db_url))
    key = report(app, P3_MAIL)
    result = team_reply(app, key, "#decision conditional\nHC-7 fixed and the ERP sync stable by Friday.",
                        sender=PAM.email, name=PAM.name)
    assert result.action == "command", result
    decision = _latest(app)
    assert (decision.decision, decision.actor, decision.via) == ("conditional", PAM.email, "mail")
    assert decision.text == "HC-7 fixed and the ERP sync stable by Friday."
    [event] = events(app, key, "exit_decision")
    assert event.actor == PAM.email and event.data["decision"] == "conditional"
    [notice] = outbox(app, "exit_decision")
    assert notice.recipients == ["cio@example.com", "sponsor@example.com", PAM.email]
    assert notice.subject.startswith("[Hypercare] Exit decision: CONDITIONAL GO - HC-7 fixed")
    assert outbox(app, "answer") == []  # the text below #decision never goes to the reporter
    report_text = for_app(app).render("exit_report", clock.now()).text
    assert "Decision: CONDITIONAL GO by Pam Manager" in report_text


def test_only_a_project_manager_with_a_signed_reply_decides(make_app, tmp_path, clock):
    app = make_app(_config(tmp_path))
    key = report(app, P3_MAIL)
    team_reply(app, key, "#decision go", sender=ADA.email)  # signed, but not a project manager
    assert _latest(app) is None
    [confirmation] = outbox(app, "confirmation")
    assert b"project_manager role" in confirmation.mime
    team_reply(app, key, "#decision go", sender=PAM.email, to="support@example.com")  # not signed
    assert _latest(app) is None
    team_reply(app, key, "#decision go", sender="cio@example.com")  # not on the team at all
    assert _latest(app) is None and outbox(app, "exit_decision") == []


@pytest.mark.parametrize(("line", "problem"), [
    ("#decision", "needs one of go, conditional, no-go"),
    ("#decision maybe", "unknown decision 'maybe'"),
    ("#decision going", "unknown decision 'going'"),
    ("#decision \x00go", None),
    ("#decision " + "no-go " * 5000, None),
])
def test_decision_syntax_hostile(line, problem):
    parsed = parse_reply_commands(line)
    if problem is None:
        assert parsed.ok, parsed.problems
    else:
        assert not parsed.ok and problem in parsed.problems[0].reason


def test_parse_decision_words_and_limits():
    assert parse_decision("GO: all fine").decision == "go"
    assert parse_decision("no go too many P2").text == "too many P2"
    assert parse_decision("conditional go: HC-3 fixed").decision == "conditional"
    assert len(parse_decision("go " + "x" * 10_000).text) == 2000
    assert parse_decision("go \x00\x1b[31mred\u2028").text == "[31mred"
    with pytest.raises(DecisionProblem, match="conditional needs its conditions"):
        parse_decision("conditional")


def test_cli_exit_decide(tmp_path):
    (tmp_path / "hypercare.toml").write_text(
        '[hypercare]\ngo_live = "2026-11-23"\ntimezone = "Europe/Berlin"\n'
        '[stakeholders]\ndaily = ["cio@example.com"]\n'
        '[[team]]\nname = "Pam Manager"\nemail = "pam@example.com"\nroles = ["project_manager"]\n'
        '[[team]]\nname = "Ada Admin"\nemail = "ada@example.com"\nroles = ["crm_admin"]\n')
    now = "2026-12-18T10:00:00+01:00"
    done = hypercare("exit", "decide", "no-go", "two", "P2", "open", "--by", "pam@example.com", "--now", now,
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert out(done).strip() == ("exit decision recorded: NO-GO by Pam Manager <pam@example.com>; "
                                 "confirmation queued for cio@example.com, pam@example.com")
    for args, needle in (
        (("go", "--by", "ada@example.com"), "'ada@example.com' may not record the exit decision"),
        (("go", "--by", "pam@example.com\r\nBcc: x@example.com"), "may not record the exit decision"),
        (("maybe", "--by", "pam@example.com"), "unknown decision 'maybe'"),
        (("conditional", "--by", "pam@example.com"), "conditional needs its conditions"),
    ):
        bad = hypercare("exit", "decide", *args, "--now", now, cwd=tmp_path)
        error = bad.stderr.decode()
        assert bad.returncode == 2 and needle in error and "Traceback" not in error
        assert len([line for line in error.splitlines() if line.strip()]) == 1, error
    listing = hypercare("outbox", "list", cwd=tmp_path)
    assert "exit_decision" in out(listing)
    from app import App
    from config import load_config
    from tickets.clock import SystemClock

    app = App(load_config(tmp_path / "hypercare.toml"), SystemClock())
    with app.store.read() as s:
        assert [r.decision for r in s.scalars(select(ExitDecision))] == ["no-go"]


# --- issue 16: #decision as a reply to the exit report itself ---------------------------------------------

PAUL = TeamMember("Paul Planner", "paul@example.com", ("project_manager",))
EXIT_DAY_MORNING = datetime(2026, 12, 18, 7, 0, tzinfo=UTC)  # 08:00 in Berlin: the exit report is due


def _exit_app(make_app, tmp_path, clock, relay, db_url=None):  # type: ignore[no-untyped-def]
    cfg = _config(tmp_path, db_url)
    cfg = dataclasses.replace(cfg, team=(*cfg.team, PAUL),
                              smtp_out=SmtpOutSettings(host="127.0.0.1", port=relay.port, timeout=5))
    app = make_app(cfg)
    report(app, P3_MAIL)
    clock.set(EXIT_DAY_MORNING)
    [(_, job)] = periodic_job(app)
    assert "exit_report 2026-12-18: queued" in job()
    flush(app)
    copies = {tuple(d.recipients): d for d in relay.deliveries if "Exit report" in d.message["Subject"]}
    relay.deliveries.clear()
    return app, copies


def _reply(app, copy, body: str, *, sender: str, to: str | None = None, in_reply_to: bool = True):  # type: ignore[no-untyped-def]
    message = copy.message
    quoted = "\n".join("> " + line for line in text_of(copy).splitlines()[:5])
    return app.pipeline.ingest(make_mail(
        subject=f"Re: {message['Subject']}", body=f"{body}\n\nOn Fri, 18 Dec 2026 the desk wrote:\n{quoted}\n",
        sender=sender, to=to or str(message["Reply-To"] or "support@example.com"), name="Someone",
        in_reply_to=message["Message-ID"].strip("<>") if in_reply_to else None))


def test_exit_report_goes_to_each_project_manager_with_their_own_signed_reply_address(make_app, tmp_path, clock,
                                                                                       relay, db_url):
    app, copies = _exit_app(make_app, tmp_path, clock, relay, db_url)
    assert set(copies) == {("cio@example.com", "sponsor@example.com"), (PAM.email,), (PAUL.email,)}
    shared = copies[("cio@example.com", "sponsor@example.com")]
    assert shared.message["Reply-To"] is None and "reply to this mail with one of these" not in text_of(shared)
    pam, paul = str(copies[(PAM.email,)].message["Reply-To"]), str(copies[(PAUL.email,)].message["Reply-To"])
    assert re.fullmatch(r"support\+EXIT-20261218\.[0-9a-f]{29}@example\.com", pam), pam
    assert pam != paul and "#decision conditional <the conditions>" in text_of(copies[(PAM.email,)])
    assert 'id="decision-reply"' in html_of(copies[(PAM.email,)])
    with app.store.read() as s:  # nothing stored carries the credential
        stored = b"".join(i.mime for i in s.scalars(select(OutboxItem).where(OutboxItem.kind == "exit_report")))
    assert b"EXIT-20261218.unsigned@" in stored and pam.split("@")[0].encode() not in stored

    result = _reply(app, copies[(PAM.email,)], "#decision conditional\nHC-7 fixed and the ERP sync stable by Friday.",
                    sender=PAM.email)
    assert result.action == "command" and "exit decision recorded: CONDITIONAL GO by Pam Manager" in result.detail
    decision = _latest(app)
    assert (decision.decision, decision.actor, decision.via) == ("conditional", PAM.email, "mail")
    assert decision.text == "HC-7 fixed and the ERP sync stable by Friday." and decision.message_id
    [notice] = outbox(app, "exit_decision")
    assert notice.recipients == ["cio@example.com", "sponsor@example.com", PAM.email]
    assert outbox(app, "stakeholder_reply") == [] and len(outbox(app, "ack")) == 1  # no new ticket
    with app.store.read() as s:
        kept = s.scalar(select(Message).where(Message.message_id == decision.message_id))
        assert kept.disposition == "comment" and kept.ticket_id is None
        assert pam.split("@")[0] not in json.dumps(kept.to_addrs)
        assert "exit-20261218.redacted@" in kept.to_addrs[0].lower()
    assert "Decision: CONDITIONAL GO by Pam Manager" in for_app(app).render("exit_report", clock.now()).text


@pytest.mark.parametrize("case", ["stakeholder", "forged-from", "other-pm-token", "outsider-with-token",
                                  "forged-token", "expired", "unknown-word", "other-command", "no-role"])
def test_others_replies_to_the_exit_report_record_no_decision(make_app, tmp_path, clock, relay, case):
    app, copies = _exit_app(make_app, tmp_path, clock, relay)
    pam_copy, paul_copy = copies[(PAM.email,)], copies[(PAUL.email,)]
    shared = copies[("cio@example.com", "sponsor@example.com")]
    pam_address = str(pam_copy.message["Reply-To"])
    forged = re.sub(r"\.[0-9a-f]{29}@", "." + "0" * 29 + "@", pam_address)
    copy, body, sender, to, why = {
        "stakeholder": (shared, "#decision go", "cio@example.com", None, "signed reply address"),
        "forged-from": (pam_copy, "#decision go", PAUL.email, None, f"was sent to {PAM.email}, not to {PAUL.email}"),
        "other-pm-token": (paul_copy, "#decision no-go too risky", PAM.email, None, f"was sent to {PAUL.email}"),
        "outsider-with-token": (pam_copy, "#decision go", "mallory@evil.example", None, f"was sent to {PAM.email}"),
        "forged-token": (pam_copy, "#decision go", PAM.email, forged, "signed reply address"),
        "expired": (pam_copy, "#decision go", PAM.email, None, "expired"),
        "unknown-word": (pam_copy, "#decision maybe\x00\r\nBcc: x@evil.example", PAM.email, None,
                         "unknown decision 'maybe'"),
        "other-command": (pam_copy, "#decision go\n#resolve all done", PAM.email, None, "only #decision acts"),
        "no-role": (pam_copy, "#decision go", PAM.email, None, "may not record the exit decision"),
    }[case]
    if case == "expired":
        clock.advance(days=15)
    if case == "no-role":  # Pam left the project manager role after the report went out
        app.replies.stakeholders.config = dataclasses.replace(app.config, team=tuple(
            dataclasses.replace(m, roles=("crm_admin",)) if m.email == PAM.email else m for m in app.config.team))
    result = _reply(app, copy, body, sender=sender, to=to)
    assert result.action == "comment", result
    assert _latest(app) is None and outbox(app, "exit_decision") == []
    assert "#decision not recorded" in result.detail and why in result.detail, result.detail
    [forwarded] = outbox(app, "stakeholder_reply")  # the project managers hear it, with the reason
    assert b"Its #decision was NOT recorded:" in forwarded.mime and b"Bcc: x@evil" not in forwarded.mime.split(
        b"\r\n\r\n")[0]


def test_a_megabyte_decision_reply_is_recorded_capped(make_app, tmp_path, clock, relay):
    app, copies = _exit_app(make_app, tmp_path, clock, relay)
    result = _reply(app, copies[(PAUL.email,)], "#decision no-go " + "too many open P2 " * 60_000, sender=PAUL.email)
    assert result.action == "command"
    decision = _latest(app)
    assert decision.decision == "no-go" and decision.actor == PAUL.email and len(decision.text) == 2000
