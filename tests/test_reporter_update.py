"""The reporter-update notice: the team is told when the reporter (or a cc) replies or reopens, on SQLite
and PostgreSQL, mail in through the real ingest path and out through the real aiosmtpd relay."""

from __future__ import annotations

from desk_kit import (
    ADA,
    OLGA,
    P2_MAIL,
    P3_MAIL,
    REPORTER,
    SUPPORT,
    TIM,
    desk_config,
    events,
    flush,
    html_of,
    outbox,
    report,
    signed_address,
    team_reply,
    text_of,
    ticket,
)
from mailkit import make_mail, parse

from config import Config, DatabaseSettings


def _updates(relay):  # type: ignore[no-untyped-def]
    return [d for d in relay.deliveries if d.message["X-Hypercare-Ticket"] and (
        " Reply from " in d.message["Subject"] or " Reopened by " in d.message["Subject"])]


def _reporter_says(app, key, body, *, sender=REPORTER, message_id=None, **kwargs):  # type: ignore[no-untyped-def]
    quoted = f"{body}\n\nOn Mon, 23 Nov 2026, CRM Hypercare Support wrote:\n> Earlier text we sent\n> about {key}\n"
    return app.pipeline.ingest(make_mail(subject=f"Re: [{key}] {P2_MAIL[0]}", body=quoted, sender=sender,
                                         to=SUPPORT, message_id=message_id, **kwargs))


def test_reporter_reply_notifies_the_role_once_with_message_thread_and_signed_reply_to(
        make_app, clock, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P2_MAIL, message_id="req-1@customer.example")  # P2 technical_consultant
    flush(app)
    relay.deliveries.clear()
    clock.advance(minutes=40)
    raw = make_mail(subject=f"Re: [{key}] {P2_MAIL[0]}", sender=REPORTER, to=SUPPORT, name="Maria Keller",
                    message_id="reply-1@customer.example",
                    body="Here is the <b>log</b>: error 503 from the SAP gateway.\n\n"
                         "On Mon, Maria Keller wrote:\n> The integration with SAP fails\n")
    assert app.pipeline.ingest(raw).action == "threaded"
    assert app.pipeline.ingest(raw).action == "duplicate"  # re-delivery of the same reply
    [item] = outbox(app, "reporter_update")
    assert item.idempotency_key == f"reporter-update:reply-1@customer.example>{TIM.email}"
    flush(app)
    [notice] = _updates(relay)
    msg = notice.message
    assert notice.recipients == [TIM.email]
    assert msg["Subject"] == f"[{key}] Reply from Maria Keller: {P2_MAIL[0]}"
    assert msg["Reply-To"] == signed_address(app, key, TIM.email)  # signed for Tim alone, when sent
    assert msg["In-Reply-To"] == "<reply-1@customer.example>"
    assert "<req-1@customer.example>" in msg["References"] and msg["Auto-Submitted"] == "auto-generated"
    text, html = text_of(notice), html_of(notice)
    assert "Maria Keller <maria@customer.example> replied to" in text
    assert "error 503 from the SAP gateway" in text and "> The integration" not in text  # quote stripped
    assert "Status:          New" in text and "Severity:        P2" in text
    assert "due Mon 23 Nov 2026 14:00 CET (3 h 20 min left)" in text
    assert "Earlier in this ticket (1 message)" in text and "orders are not transferred" in text
    assert "#resolve [resolution text]" in text and f"support+{key}." not in text and "act on" in text
    assert "&lt;b&gt;log&lt;/b&gt;" in html and "<b>log</b>" not in html
    clock.advance(minutes=5)
    app.outbox.flush(app.transport())
    assert len(_updates(relay)) == 1  # sent once
    assert REPORTER not in {r for d in relay.deliveries for r in d.recipients}


def test_the_assignee_alone_is_told_and_a_cc_reply_counts(make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P2_MAIL, headers={"Cc": "boss@customer.example"})
    team_reply(app, key, "#ack", sender=OLGA.email)  # Olga takes it though she does not hold the role
    assert ticket(app, key).assignee == OLGA.email
    _reporter_says(app, key, "One more detail.", sender="boss@customer.example", name="Bea Boss")
    [item] = outbox(app, "reporter_update")
    assert item.recipients == [OLGA.email] and "Reply from Bea Boss" in item.subject


def test_reply_while_waiting_says_the_clock_runs_again(make_app, clock, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P3_MAIL)  # crm_admin: Ada
    team_reply(app, key, "#wait\nWhich account is it?", sender=TIM.email)
    clock.advance(hours=2)
    assert _reporter_says(app, key, "Account 4711.").action == "threaded"
    assert ticket(app, key).status == "in_progress"
    [item] = outbox(app, "reporter_update")
    assert item.recipients == [ADA.email]
    body = parse(item.mime).get_body(("plain",)).get_content()
    assert "was waiting on the reporter: the SLA clock runs again" in body and "Account 4711." in body
    assert "Which account is it?" in body  # our question, in the thread summary


def test_reopen_notifies_and_a_rating_or_a_team_reply_does_not(make_app, clock, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P2_MAIL)
    team_reply(app, key, "We restart the connector.", sender=TIM.email)  # team answer: no notice
    team_reply(app, key, "#note checked the logs", sender=TIM.email)
    app.pipeline.ingest(make_mail(subject=f"Re: [{key}]", body="#resolve typo", sender=TIM.email, to=SUPPORT))
    team_reply(app, key, "#resolve Restarted the connector.", sender=TIM.email)
    assert ticket(app, key).status == "resolved"
    assert outbox(app, "reporter_update") == []
    [resolved] = outbox(app, "resolved")
    rate_to = parse(resolved.mime)["Reply-To"]  # the signed rating address
    rating = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] Resolved", body="5 - quick, thanks",
                                           sender=REPORTER, to=rate_to))
    assert rating.action == "feedback" and outbox(app, "reporter_update") == []
    clock.advance(days=1)
    reopened = _reporter_says(app, key, "It fails again since 10:00.", message_id="again@customer.example")
    assert reopened.action == "reopened"
    flush(app)
    [notice] = _updates(relay)
    assert notice.recipients == [TIM.email]
    assert notice.message["Subject"] == f"[{key}] Reopened by Maria Keller: {P2_MAIL[0]}"
    assert "reopened " + key in text_of(notice) and "It fails again since 10:00." in text_of(notice)
    assert "Earlier in this ticket (4 messages)" in text_of(notice)
    assert "(our answer): We restart the connector. Tim Tech CRM Hypercare Support\r\n" in text_of(notice)
    assert "5 - quick, thanks" in text_of(notice)  # the rating is part of the thread, it sent nothing
    assert "checked the logs" not in text_of(notice)  # the team's own mails (commands, notes) are left out


def test_ignored_and_stranger_mail_notify_nobody(make_app, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P2_MAIL, message_id="req-2@customer.example")
    auto = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] Out of office", body="I am away.", sender=REPORTER,
                                         to=SUPPORT, headers={"Auto-Submitted": "auto-replied"}))
    assert auto.action == "ignored"
    stranger = app.pipeline.ingest(make_mail(subject="Re: sync", body="Same here.", sender="x@other.example",
                                             to=SUPPORT, in_reply_to="req-2@customer.example"))
    assert stranger.action == "created" and stranger.key != key  # a stranger gets a linked ticket, not a seat
    assert outbox(app, "reporter_update") == []


def test_without_a_team_nothing_is_mailed(make_app, tmp_path, db_url):
    app = make_app(Config(base_dir=tmp_path, database=DatabaseSettings(url=db_url)))
    key = report(app, P2_MAIL).strip()
    result = app.pipeline.ingest(make_mail(subject=f"Re: [{key}] x", body="More info.", sender=REPORTER,
                                           to="support@localhost"))
    assert result.action == "threaded"
    assert outbox(app, "reporter_update") == [] and [e.kind for e in events(app, key, "reply")] == ["reply"]


def test_replying_to_the_notice_with_resolve_acts(make_app, clock, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P2_MAIL)
    _reporter_says(app, key, "It works again after your restart.")
    flush(app)
    [notice] = _updates(relay)
    clock.advance(minutes=10)
    result = app.pipeline.ingest(make_mail(
        subject=f"Re: {notice.message['Subject']}", sender=TIM.email, name="Tim Tech",
        to=notice.message["Reply-To"], in_reply_to=notice.message["Message-ID"].strip("<>"),
        body="#resolve Confirmed by the reporter.\n\nOn Mon, support wrote:\n> It works again\n"))
    assert (result.action, result.key) == ("command", key)
    t = ticket(app, key)
    assert t.status == "resolved" and t.resolution == "Confirmed by the reporter."
    assert [e.actor for e in events(app, key, "resolved")] == [TIM.email]
    assert len(outbox(app, "reporter_update")) == 1  # the team's own reply is not news for the team
