"""Feedback: the rating request in the resolution notice and the replies to it, through app.pipeline.ingest."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from desk_kit import ADA, P2_MAIL, REPORTER, SUPPORT, desk_config, report, team_reply, ticket
from mailkit import make_mail, parse
from sqlalchemy import select

from config import ConfigError, NotifierSettings, parse_config
from replies.ratings import FeedbackConfigError, parse_feedback_setting, read_rating
from tickets.feedback import feedback_summary
from tickets.models import Feedback, OutboxItem


def resolved(make_app, tmp_path, db_url=None, **notifier):  # type: ignore[no-untyped-def]
    """A P2 reported and resolved by Ada with #resolve; returns (app, key, the resolution notice as a mail)."""
    cfg = desk_config(tmp_path, db_url=db_url)
    if notifier:
        cfg = dataclasses.replace(cfg, notifier=NotifierSettings(**notifier))
    app = make_app(config=cfg)
    key = report(app, P2_MAIL)
    app.clock.advance(hours=1)
    assert team_reply(app, key, "#resolve Restarted the ERP connector; orders flow again.").action != "created"
    with app.store.read() as s:
        item = s.scalar(select(OutboxItem).where(OutboxItem.kind == "resolved"))
        notice = parse(item.mime)
    return app, key, notice


def reply_to_notice(app, notice, body: str, *, sender: str = REPORTER, to: str | None = None,  # type: ignore[no-untyped-def]
                    quote: bool = True):
    text = body
    if quote:
        quoted = "\n".join(f"> {line}" for line in notice.get_body(("plain",)).get_content().splitlines())
        text = f"{body}\n\nOn Tue, 24 Nov 2026 CRM Hypercare Support wrote:\n{quoted}\n"
    return app.pipeline.ingest(make_mail(subject=f"Re: {notice['Subject']}", body=text, sender=sender,
                                         to=to or str(notice["Reply-To"]), in_reply_to=notice["Message-ID"][1:-1]))


def rating_of(app, key):  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        row = s.scalar(select(Feedback).where(Feedback.ticket_id == ticket(app, key).id))
        return None if row is None else (row.rating, row.comment)


def test_resolution_notice_asks_for_a_signed_rating(make_app, tmp_path):
    app, key, notice = resolved(make_app, tmp_path)
    token = app.tokens.sign(key, purpose="feedback")
    assert str(notice["Reply-To"]) == f"support+rate-{key}.{token}@example.com"
    text = notice.get_body(("plain",)).get_content()
    assert "rating from 1 (poor) to 5 (excellent)" in text and f"Feedback reference: {key}.{token}" in text
    html = notice.get_body(("html",)).get_content()
    assert f"mailto:support+rate-{key}.{token}@example.com?subject=Rating%205" in html
    assert token not in app.tokens.reply_address(key, REPORTER, app.clock.now())  # a rating link cannot #resolve


def test_valid_rating_is_stored_and_does_not_reopen(make_app, tmp_path, db_url):
    app, key, notice = resolved(make_app, tmp_path, db_url)
    app.clock.advance(hours=2)
    result = reply_to_notice(app, notice, "4\nQuick fix, but the first answer took a while.")
    assert (result.action, result.key, result.detail) == ("feedback", key, "rating 4")
    assert rating_of(app, key) == (4, "Quick fix, but the first answer took a while.")
    t = ticket(app, key)
    assert t.status == "resolved" and t.reopened_count == 0
    assert [e.detail for e in t.events if e.kind == "feedback"] == [
        "rating 4/5: Quick fix, but the first answer took a while."]
    # The reporter changes their mind: the latest answer counts, still one row.
    app.clock.advance(minutes=5)
    assert reply_to_notice(app, notice, "5 - thanks again!").action == "feedback"
    assert rating_of(app, key) == (5, "thanks again!")


def test_plain_reply_to_support_quoting_the_reference_counts(make_app, tmp_path):
    app, key, notice = resolved(make_app, tmp_path)
    result = reply_to_notice(app, notice, "Rating: 2\nIt took three days.", to=SUPPORT)
    assert result.action == "feedback" and rating_of(app, key) == (2, "It took three days.")


@pytest.mark.parametrize("forged", ["0123456789abcdef", "ffffffffffffffff"])
def test_forged_token_stores_nothing_and_reopens_nothing(make_app, tmp_path, forged):
    app, key, notice = resolved(make_app, tmp_path)
    result = app.pipeline.ingest(make_mail(
        subject=f"Re: [{key}] Resolved", sender=REPORTER, to=f"support+rate-{key}.{forged}@example.com",
        body=f"1\nterrible\n\n> Feedback reference: {key}.{forged}\n"))
    assert (result.action, result.key) == ("feedback-rejected", key)
    assert rating_of(app, key) is None
    t = ticket(app, key)
    assert t.status == "resolved" and [e.detail for e in t.events if e.kind == "feedback_rejected"] == [
        "invalid feedback token"]
    # Nor does a reply-command token make a rating.
    reply_token = app.tokens.sign(key, purpose="reply")
    result = app.pipeline.ingest(make_mail(subject=f"Re: [{key}]", sender=REPORTER, to=SUPPORT,
                                           body=f"1\n\n> Feedback reference: {key}.{reply_token}\n"))
    assert result.action == "feedback-rejected" and rating_of(app, key) is None


@pytest.mark.parametrize("body", ["0", "6", "10 - best ever", "-1", "Rating: 7"])
def test_out_of_range_is_rejected(make_app, tmp_path, body):
    app, key, notice = resolved(make_app, tmp_path)
    result = reply_to_notice(app, notice, body)
    assert result.action == "feedback-rejected" and "is not between 1 and 5" in result.detail
    assert rating_of(app, key) is None and ticket(app, key).status == "resolved"


def test_reply_without_a_rating_is_a_normal_reply_that_reopens(make_app, tmp_path):
    app, key, notice = resolved(make_app, tmp_path)
    result = reply_to_notice(app, notice, "5 users cannot log in again since this morning.")
    assert result.action == "reopened" and rating_of(app, key) is None
    assert ticket(app, key).status == "in_progress"


def test_only_participants_rate(make_app, tmp_path):
    app, key, notice = resolved(make_app, tmp_path)
    # A forwarded notice answered by a stranger does not even join the ticket (threading): a new linked ticket.
    result = reply_to_notice(app, notice, "1", sender="someone@else.example")
    assert result.action == "created" and result.key != key and f"linked to {key}" in result.detail
    assert rating_of(app, key) is None


def test_feedback_off_or_only_in_given_phases(make_app, tmp_path):
    app, key, notice = resolved(make_app, tmp_path, feedback="off")
    assert notice["Reply-To"] is None or "rate-" not in str(notice["Reply-To"])
    assert "Feedback reference" not in notice.get_body(("plain",)).get_content()
    desk = dataclasses.replace(app.config, notifier=NotifierSettings(feedback="stabilisation, transition"))
    from replies.ratings import FeedbackDesk

    phased = FeedbackDesk(desk, app.tokens, lambda: app.go_live)
    t = ticket(app, key)
    assert phased.request_for(t, datetime(2026, 11, 24, 12, tzinfo=UTC)) is None  # week 1: intensive
    assert phased.request_for(t, datetime(2026, 12, 1, 12, tzinfo=UTC)) is not None  # week 2
    assert phased.request_for(t, datetime(2026, 12, 22, 12, tzinfo=UTC)) is None  # normal support
    assert parse_feedback_setting("on") == parse_feedback_setting("always")
    with pytest.raises(FeedbackConfigError, match=r"\[notifier\] feedback: unknown phase 'week2'"):
        parse_feedback_setting("week2")
    cfg = parse_config({"notifier": {"feedback": "transition"}}, base_dir=tmp_path)
    assert cfg.notifier.feedback == "transition"
    with pytest.raises(ConfigError, match=r"\[notifier\] feedback"):
        parse_config({"notifier": {"feedback": 5}}, base_dir=tmp_path)


@pytest.mark.parametrize(("body", "expected"), [
    ("4", (4, "")), ("4/5", (4, "")), ("Rating: 3\nok", (3, "ok")), ("★★★★", (4, "")), ("****☆ - nice", (4, "nice")),
    ("5 - great job", (5, "great job")), ("2.\nSlow.", (2, "Slow.")), ("5 stars!", (5, "")),
    ("5 users cannot log in", None), ("Thanks a lot", None), ("", None),
])
def test_reading_the_first_line(body, expected):
    got = read_rating(body)
    assert (got.rating, got.comment) == expected if expected else got is None


def test_subject_rating_from_the_mailto_link():
    got = read_rating("(optional comment)\n\nFeedback reference: HC-1.0123456789abcdef", "Rating 5 [HC-1]")
    assert (got.rating, got.comment) == (5, "")


def test_summary_for_dashboard_and_digests(make_app, tmp_path):
    app, key, notice = resolved(make_app, tmp_path)
    reply_to_notice(app, notice, "1\nNobody told us it was fixed.")
    second = report(app, ("Typo on the account page", "There is a typo in the label of the account form."))
    assert team_reply(app, second, "#resolve fixed the label").action != "created"
    with app.store.read() as s:
        notice2 = parse(s.scalars(select(OutboxItem).where(OutboxItem.kind == "resolved")
                                  .order_by(OutboxItem.id.desc())).first().mime)
    app.clock.advance(days=2)
    reply_to_notice(app, notice2, "5")
    with app.store.read() as s:
        everything = feedback_summary(s)
        recent = feedback_summary(s, since=app.clock.now() - timedelta(days=1))
    assert (everything.count, everything.average, everything.distribution[1], everything.distribution[5]) == (
        2, 3.0, 1, 1)
    assert everything.low == [{"key": key, "rating": 1, "comment": "Nobody told us it was fixed.",
                               "at": everything.low[0]["at"]}]
    assert (recent.count, recent.average, recent.low) == (1, 5.0, [])
    assert ADA.email not in str(everything.to_dict())
