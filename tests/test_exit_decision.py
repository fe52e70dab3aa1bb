"""The exit decision: a project manager's signed ``#decision`` reply or ``hypercare exit decide``;
audited, shown in the exit report and confirmed to the stakeholders."""

from __future__ import annotations

import dataclasses

import pytest
from desk_kit import ADA, P3_MAIL, PAM, desk_config, events, outbox, report, team_reply
from sqlalchemy import select
from test_cli import hypercare, out

from config import StakeholderSettings
from notifier.digests import for_app
from replies.command_syntax import parse_reply_commands
from tickets.decisions import DecisionProblem, latest_decision, parse_decision
from tickets.models import ExitDecision


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
