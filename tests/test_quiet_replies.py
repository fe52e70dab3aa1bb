"""Issue 14, "replies that need nothing stay quiet": a thank-you on a resolved ticket is recorded as positive
feedback and reopens nothing; a stakeholder's reply to a digest goes to the project managers as a comment, not
a ticket; a reply to a resolved ticket within the reopen window (default 14 days) threads into it."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from desk_kit import PAM, REPORTER, TIM, desk_config, events, flush, outbox, report, team_reply, text_of, ticket
from mailkit import make_mail

from config import StakeholderSettings
from replies.gratitude import is_thank_you
from tickets.feedback import feedback_summary

P2 = ("Sync to ERP failing", "The integration with SAP fails since this morning, orders are not transferred.")


def _resolved(app, clock):  # type: ignore[no-untyped-def]
    key = report(app, P2, message_id="req@customer.example")
    team_reply(app, key, "#resolve Restarted the connector.", sender=TIM.email)
    flush(app)
    clock.advance(hours=1)
    return key


@pytest.mark.parametrize("body", ["Thanks, works again!", "Danke, geht wieder!", "Merci, ça marche de nouveau.",
                                  "Vielen Dank für die schnelle Hilfe!", "Merci beaucoup !", "Great, thank you"])
def test_thank_you_on_a_resolved_ticket_is_positive_feedback_not_a_reopening(make_app, clock, tmp_path, relay,
                                                                              db_url, body):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = _resolved(app, clock)
    relay.deliveries.clear()
    result = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] Resolved: {P2[0]}", body=body, sender=REPORTER,
                                           to="support@example.com", in_reply_to="req@customer.example"))
    assert (result.action, result.key) == ("thanks", key)
    t = ticket(app, key)
    assert t.status == "resolved" and t.reopened_count == 0
    assert [e.actor for e in events(app, key, "thanks")] == [REPORTER]
    flush(app)
    assert relay.deliveries == []  # nobody is mailed
    with app.store.read() as session:
        assert feedback_summary(session).thanks == 1


@pytest.mark.parametrize("body", ["Thanks, but it still fails.", "Danke, aber es geht immer noch nicht.",
                                  "Merci, mais toujours une erreur.", "Thanks! Could you also check the export?",
                                  "It fails again since 10:00, error 500."])
def test_a_reply_that_reports_a_problem_still_reopens(make_app, clock, tmp_path, db_url, body):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = _resolved(app, clock)
    result = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] Resolved", body=body, sender=REPORTER,
                                           to="support@example.com"))
    assert (result.action, result.key) == ("reopened", key)


@pytest.mark.parametrize("text", ["", "\x00" * 10, "thanks " * 10_000, "merci\r\n" * 50, "?"])
def test_thank_you_detection_on_hostile_text(text):
    assert is_thank_you(text) is False


def test_reply_within_fourteen_days_threads_into_the_resolved_ticket(make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))  # reopen_days: the default
    assert app.config.hypercare.reopen_days == 14
    key = _resolved(app, clock)
    clock.advance(days=13)
    result = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] Resolved: {P2[0]}", body="The sync broke again.",
                                           sender=REPORTER, to="support@example.com"))
    assert (result.action, result.key) == ("reopened", key)


def test_a_stakeholder_reply_to_a_digest_goes_to_the_project_managers_not_a_ticket(make_app, clock, tmp_path,
                                                                                 relay, db_url):
    from notifier.digests import for_app
    from notifier.scheduler import DigestScheduler

    config = dataclasses.replace(desk_config(tmp_path, relay=relay, db_url=db_url),
                                 stakeholders=StakeholderSettings(daily=("cio@customer.example",)))
    app = make_app(config)
    report(app, P2)
    clock.advance(days=1)
    clock.set(clock.now().replace(hour=7, minute=5))  # after digest_time 08:00 Berlin
    DigestScheduler(config, app.store, for_app(app), app.go_live).run(clock.now())
    [digest] = outbox(app, "status_daily")
    flush(app)
    relay.deliveries.clear()
    reply = make_mail(subject=f"Re: {digest.subject}", body="Good progress. Why are there still open P2s?",
                      sender="cio@customer.example", name="Carl CIO", to="support@example.com",
                      in_reply_to=digest.message_id.strip("<>"))
    result = app.pipeline.ingest(reply)
    assert result.action == "comment" and result.key == "" and "project managers" in result.detail
    flush(app)
    [comment] = relay.deliveries
    assert comment.recipients == [PAM.email] and comment.message["Reply-To"] == "cio@customer.example"
    assert "Why are there still open P2s?" in text_of(comment) and "Carl CIO" in comment.message["Subject"]
    with app.store.read() as session:
        from sqlalchemy import func, select

        from tickets.models import Ticket
        assert session.scalar(select(func.count(Ticket.id))) == 1  # no new ticket, no acknowledgement
    again = app.pipeline.ingest(reply)
    assert again.action == "duplicate"
    assert timedelta(0) <= clock.now() - digest.created_at
