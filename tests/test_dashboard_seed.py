"""A seeded hypercare history for the dashboard, browser, feedback and hand-over tests (and the screenshot).

Everything goes through the real intake (``app.pipeline.ingest``); only what the team would do by
reply command (answer, resolve) is applied directly, so these tests do not depend on issue 5's
reply commands.  Go-live is Monday 2026-11-23; "now" ends on day 9 (stabilisation phase).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from mailkit import make_mail
from sqlalchemy import select

from config import Config, DatabaseSettings, HypercareSettings, TeamMember
from tickets.lifecycle import find_by_key, record_event
from tickets.models import Message, OutboxItem

GO_LIVE = date(2026, 11, 23)
NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # day 9
XSS_SUBJECT = '<script>document.title="pwned"</script> Export to Excel broken'
TEAM = (TeamMember("Ada", "ada@example.com", ("crm_admin",), on_call=True),
        TeamMember("Ben", "ben@example.com", ("business_analyst",)),
        TeamMember("Cleo", "cleo@example.com", ("technical_consultant",)),
        TeamMember("Pia", "pia@example.com", ("project_manager",)))


def seeded_config(tmp_path: Path, db_url: str | None = None) -> Config:
    return Config(
        base_dir=tmp_path, team=TEAM,
        hypercare=HypercareSettings(go_live=GO_LIVE, timezone="Europe/Berlin"),
        database=DatabaseSettings(url=db_url or f"sqlite:///{tmp_path / 'hypercare.db'}"),
    )


def answer(app, key: str, text: str, *, resolve: bool = False, by: str = "ada@example.com") -> None:  # type: ignore[no-untyped-def]
    """What a team member's public answer (and ``#resolve``) does to a ticket, applied directly."""
    now = app.clock.now()
    with app.store.session() as s:
        ticket = find_by_key(s, key)
        if ticket.first_response_at is None:
            ticket.first_response_at = now
            ticket.response_met = now <= ticket.response_due
            ticket.response_elapsed_seconds = (now - ticket.created_at).total_seconds()
        s.add(Message(ticket_id=ticket.id, message_id=f"answer-{key}-{now.timestamp()}@localhost",
                      content_hash="", direction="out", disposition="sent", from_addr="support@localhost",
                      from_name="CRM Hypercare Support", to_addrs=[ticket.reporter], subject=f"Re: [{key}]",
                      body=text, body_full=text, received_at=now, source="outbox:answer", raw=b""))
        ticket.status = "in_progress"
        record_event(s, ticket, "answered", now, actor=by, detail=text.splitlines()[0][:200])
        if resolve:
            ticket.status, ticket.resolved_at, ticket.resolution = "resolved", now, text
            record_event(s, ticket, "resolved", now, actor=by, detail=text.splitlines()[0][:200])


# (day, hour UTC, sender, subject, body, answer after hours or None, resolve)
STORY = [
    (0, 8, "maria@customer.example", "CRM is down for everyone",
     "Nobody can log in since 8:00, the whole sales team is blocked. Call me on +49 30 1234567.",
     0.5, "Login restored: the SSO certificate had expired and was renewed. Please log in again."),
    (0, 10, "tom@customer.example", "Cannot save opportunities",
     "Saving an opportunity fails with error 500 for the whole team.",
     2, "Fixed a validation rule that rejected empty discount fields; saving works again."),
    (1, 9, "lena@customer.example", "Login fails after password reset",
     "Since the reset I cannot log in, it says account locked. My colleague jan@customer.example too.",
     6, "Unlocked the account; the lockout policy now allows 10 attempts."),
    (2, 13, "omar@customer.example", "Typo in the quote PDF footer",
     "The footer of the quote PDF says 'Sincerly'. Minor but customers see it.",
     30, None),
    (3, 9, "maria@customer.example", "CRM is down again",
     "Nobody can log in again, same as Monday.",
     0.25, "Login restored: the SSO certificate chain was incomplete on the second node."),
    (4, 11, "ivan@customer.example", "Feature request: colour for VIP accounts",
     "Could VIP accounts be highlighted in the list view?",
     None, None),
    (6, 9, "tom@customer.example", "Approvals stuck in pending",
     "All discount approvals have been pending since this morning, nobody can approve.",
     1, "The approval queue was re-enabled after the release; pending approvals went through."),
    (8, 15, "sara@customer.example", XSS_SUBJECT,
     "Export to Excel gives an empty file. <img src=x onerror=alert(1)>",
     None, None),
]


def seed(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Build the history; returns {subject: key}.  The app's clock must be a FrozenClock."""
    keys: dict[str, str] = {}
    for day, hour, sender, subject, body, answer_after, resolution in STORY:
        app.clock.set(datetime(2026, 11, 23, hour, 0, tzinfo=UTC) + timedelta(days=day))
        result = app.pipeline.ingest(make_mail(subject=subject, body=body, sender=sender,
                                               name=sender.split("@")[0].title()))
        keys[subject] = result.key
        if answer_after is not None:
            app.clock.advance(hours=answer_after)
            answer(app, result.key, resolution or "We are looking into it.", resolve=resolution is not None)
    # Now: one P2 at 87 % of its 4 h (about to breach), one P1 past its hour (breached).
    app.clock.set(NOW - timedelta(hours=3, minutes=30))
    keys["at_risk"] = app.pipeline.ingest(make_mail(
        subject="Email sync to Outlook failing for sales", sender="kim@customer.example",
        body="Outlook sync fails for the whole sales team since the update, they are blocked.")).key
    app.clock.set(NOW - timedelta(hours=2))
    keys["breached"] = app.pipeline.ingest(make_mail(
        subject="Data loss: contacts deleted overnight", sender="lena@customer.example",
        body="Hundreds of contacts were deleted overnight, data loss!")).key
    app.clock.set(NOW)
    app.config.path(app.config.smtp_out.maildir).parent.mkdir(parents=True, exist_ok=True)
    app.outbox.flush(app.transport())  # into the Maildir under tmp_path
    with app.store.session() as s:
        first = s.scalar(select(OutboxItem).order_by(OutboxItem.id))
        first.status, first.last_error = "dead", "550 5.1.1 mailbox unavailable"
    return keys


def rate(app, key: str, rating: str, comment: str = "", sender: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """Reply to the resolution notice of *key* the way a reporter does (plain reply quoting the reference)."""
    request = app.feedback.request_for(_ticket(app, key), app.clock.now())
    with app.store.read() as s:
        reporter = find_by_key(s, key).reporter
    body = f"{rating}\n{comment}\n\n> Your ticket {key} was resolved.\n> Feedback reference: {request.reference}\n"
    return app.pipeline.ingest(make_mail(subject=f"Re: [{key}] resolved", body=body,
                                         sender=sender or reporter, to=request.address)).action


def _ticket(app, key: str):  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return find_by_key(s, key)


def build_seeded_app(make_app, tmp_path: Path, db_url: str | None = None):  # type: ignore[no-untyped-def]
    app = make_app(config=seeded_config(tmp_path, db_url))
    keys = seed(app)
    assert rate(app, keys["CRM is down for everyone"], "5", "Fast and clear, thank you!") == "feedback"
    assert rate(app, keys["Cannot save opportunities"], "2", "Took <b>two hours</b> & nobody called back") == "feedback"
    return app, keys


def with_config(app, **changes):  # type: ignore[no-untyped-def]
    return dataclasses.replace(app.config, **changes)


def test_seed_tells_the_story(make_app, tmp_path, clock):
    app, keys = build_seeded_app(make_app, tmp_path)
    from tickets.views import list_tickets

    with app.store.read() as s:
        rows = {r["key"]: r for r in list_tickets(s)}
    assert len(rows) == len(STORY) + 2
    assert rows[keys["CRM is down for everyone"]]["status"] == "resolved"
    assert rows[keys[XSS_SUBJECT]]["status"] == "new"
    assert rows[keys["breached"]]["severity"] == "P1" and rows[keys["at_risk"]]["severity"] == "P2"


if __name__ == "__main__":  # the README screenshot: python tests/test_dashboard_seed.py DIR -> DIR/dashboard.html
    import io
    import sys

    from app import App
    from tickets.clock import FrozenClock

    folder = Path(sys.argv[1]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    frozen = FrozenClock(datetime(2026, 11, 23, 9, tzinfo=UTC))
    seeded, _ = build_seeded_app(lambda config=None, db=None: App(config, frozen, io.StringIO(), io.StringIO(), {}),
                                 folder)
    from dashboard.pages import overview_html
    from dashboard.summary import DashboardContext

    context = DashboardContext(seeded.config, seeded.sla, seeded.go_live, frozen.now())
    with seeded.store.read() as session:
        (folder / "dashboard.html").write_text(overview_html(session, context, seeded.renderer), encoding="utf-8")
    print(folder / "dashboard.html")
