"""Subjects are folded only where RFC 5322 needs it (lines over 78), never straight after ``Subject:``.

The stdlib moves a whole value that fits on a line of its own to the next line, which many clients
show as a subject with a leading space; ``notifier.mime.refold`` breaks only before existing spaces.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime

import pytest
from desk_kit import ADA, PAM, desk_config, flush, outbox, report, team_reply

from config import NotifierSettings, StakeholderSettings
from notifier.digests import for_app
from notifier.mime import OutgoingMail, as_smtp_bytes, build_mime

LONG = [
    "Returned mail: Requested action not taken: mailbox name not allowed",  # the stdlib's victim
    "Für die Rechnungsstellung benötigen wir dringend die Übersicht über alle offenen Posten im CRM",
    "https://crm.example.com/lightning/r/Account/0015g00000XyZAbCDE/view?filter=owner%3Dme&x=1 broken",
    "x" * 150,
    "word " * 60,
    "Ünïcödé " * 20,
]
# The fixed part of every template's subject line (templates/*.txt.j2), in front of a long subject.
PREFIXES = ["[HC-12] ", "Re: [HC-12] ", "[HC-12] Partly done: ", "[HC-1234] P1 escalation at 100%: P1 ",
            "[HC-12] Reply from Maria Müller-Lüdenscheidt: ", "[HC-12] Resolved: ",
            "[Hypercare] Exit decision: CONDITIONAL GO - ", "[Hypercare] Weekly summary, Weeks 1-2 (23 Nov - 06 Dec): "]


def _subject_lines(mime: bytes) -> list[bytes]:
    head = mime.split(b"\r\n\r\n", 1)[0]
    start = head.index(b"\r\nSubject:") + 2
    lines = [head[start:].split(b"\r\n")[0]]
    for line in head[start:].split(b"\r\n")[1:]:
        if not line.startswith((b" ", b"\t")):
            break
        lines.append(line)
    return lines


def _check(mime: bytes, expected: str | None = None) -> None:
    lines = _subject_lines(mime)
    assert lines[0].strip() != b"Subject:" and lines[0].startswith(b"Subject: ") and lines[0][9:10] != b" "
    for line in lines:
        assert len(line) <= 78 or b" " not in line.strip(), line  # longer only when one word is longer
    if len(b"\r\n".join(lines)) <= 78:
        assert len(lines) == 1
    if expected is not None:  # no character lost or added (the stdlib's own encoder may move a space
        back = email.message_from_bytes(mime, policy=email.policy.default)  # between encoded words)
        assert "".join(str(back["Subject"]).split()) == "".join(expected.split())


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("subject", LONG)
def test_long_subjects_fold_only_where_needed(prefix, subject):
    text = (prefix + subject).strip()
    mail = OutgoingMail(kind="ack", to=["a@example.com"], subject=text, text="hi")
    mime = as_smtp_bytes(build_mime(mail, sender_address="s@example.com", sender_name="S", message_id="x@y",
                                    date=datetime(2026, 11, 23, tzinfo=UTC)))
    _check(mime, " ".join(text.split()) if "  " in text else text)


def test_every_template_with_a_long_subject(make_app, tmp_path, db_url, relay):
    """A ticket with a long subject through every mail the desk sends: ack, escalation, reporter update,
    answer, resolution, confirmation, exit decision, and the three digests."""
    if True:
        config = dataclasses.replace(
            desk_config(tmp_path, relay=relay, db_url=db_url),
            notifier=NotifierSettings(confirmations="all"),
            stakeholders=StakeholderSettings(daily=("cio@example.com",), weekly=("sponsor@example.com",)))
        app = make_app(config)
        subject = "CRM down: Returned mail: Requested action not taken: mailbox name not allowed"
        key = report(app, ("URGENT " + subject, "Nobody can log in since 8:00, the whole sales team is blocked."))
        team_reply(app, key, "#ack", sender=ADA.email)
        team_reply(app, key, "We are on it, the login works again.", sender=ADA.email)
        app.pipeline.ingest(_reporter_reply(app, key))
        team_reply(app, key, "#resolve Fixed the SSO certificate.", sender=ADA.email)
        team_reply(app, key, "#decision conditional the SSO monitoring is in place by Friday 18 December 2026",
                   sender=PAM.email)
        app.escalator.sweep()
        builder = for_app(app)
        with app.store.session() as s:
            from notifier.outbox import enqueue

            for kind in ("status_daily", "weekly_summary", "exit_report"):
                enqueue(s, builder.mail(kind, builder.render(kind, app.clock.now())), key=f"t:{kind}",
                        support=config.support, now=app.clock.now())
        kinds = set()
        for item in outbox(app):
            kinds.add(item.kind)
            _check(item.mime)
        assert {"ack", "escalation", "confirmation", "answer", "resolved", "exit_decision", "reporter_update",
                "status_daily", "weekly_summary", "exit_report"} <= kinds, kinds
        flush(app)
        assert relay.deliveries


def _reporter_reply(app, key: str) -> bytes:  # type: ignore[no-untyped-def]
    from desk_kit import REPORTER
    from mailkit import make_mail

    return make_mail(subject=f"Re: [{key}] still broken for the whole sales team in Munich and Hamburg",
                     body="It is still broken for us.", sender=REPORTER, to="support@example.com")
