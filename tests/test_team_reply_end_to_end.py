"""What a team member's signed reply causes beyond the ticket: attachments to the reporter, override statistics."""

from __future__ import annotations

from email.message import EmailMessage

from desk_kit import ADA, P3_MAIL, REPORTER, desk_config, flush, report, signed_address


def _answer_with_attachment(app, key: str, data: bytes, filename: str) -> bytes:  # type: ignore[no-untyped-def]
    msg = EmailMessage()
    msg["From"] = f"{ADA.name} <{ADA.email}>"
    msg["To"] = signed_address(app, key, ADA.email)
    msg["Subject"] = f"Re: [{key}] {P3_MAIL[0]}"
    msg["Message-ID"] = "<answer-with-file@example.com>"
    msg.set_content("Hello Maria,\nthe label is fixed, see the screenshot.\n")
    msg.add_attachment(data, maintype="image", subtype="png", filename=filename)
    return msg.as_bytes()


def test_public_answer_carries_the_members_attachment(make_app, tmp_path, relay, db_url):
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url))
    key = report(app, P3_MAIL)
    flush(app)
    relay.deliveries.clear()
    screenshot = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50
    result = app.pipeline.ingest(_answer_with_attachment(app, key, screenshot, "label fixed.png"))
    assert result.key == key
    flush(app)
    [answer] = [d for d in relay.deliveries if d.recipients == [REPORTER]]
    files = [(part.get_filename(), part.get_content_type(), part.get_content())
             for part in answer.message.iter_attachments()]
    assert files == [("label fixed.png", "image/png", screenshot)]
    assert "the label is fixed" in answer.message.get_body(("plain",)).get_content()


def test_attachment_over_the_cap_is_left_out(make_app, tmp_path, relay, db_url):
    import dataclasses

    from config import IntakeSettings

    config = dataclasses.replace(desk_config(tmp_path, relay=relay, db_url=db_url),
                                 intake=IntakeSettings(max_attachment_bytes=100))
    app = make_app(config)
    key = report(app, P3_MAIL)
    flush(app)
    relay.deliveries.clear()
    app.pipeline.ingest(_answer_with_attachment(app, key, b"x" * 5000, "huge.png"))
    flush(app)
    [answer] = [d for d in relay.deliveries if d.recipients == [REPORTER]]
    assert list(answer.message.iter_attachments()) == []


def test_team_override_by_reply_is_counted_by_rules_eval_overrides(make_app, tmp_path, db_url):
    """End to end: #severity and #assign from a signed reply reach `hypercare rules eval --overrides`."""
    import argparse

    from desk_kit import team_reply

    from classifier.cli import cmd_eval

    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, P3_MAIL)
    team_reply(app, key, "#severity P2\n#assign technical_consultant")
    assert cmd_eval(app, argparse.Namespace(dir=None, overrides=True, rules=None)) == 0
    out = app.out.getvalue()
    assert "tickets: 1, changed by the team: 1" in out
    assert "P3->P2 x1" in out and "crm_admin->technical_consultant x1" in out
