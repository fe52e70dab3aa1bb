"""Guards: each rule on a mail built here, the registry, the order, and bounced-recipient extraction."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import SupportSettings
from core.errors import DuplicateName
from intake.guards import rules as guards
from intake.guards.rules import GuardContext, GuardHit, GuardRegistry, first_hit
from intake.parse.parser import parse_message

SUPPORT = SupportSettings(address="support@example.com")


class Everyone(set):  # type: ignore[type-arg]
    """Any address was a recipient: the tests of *what a bounce names* (the rule of *whether it counts*
    has its own tests below)."""

    def __contains__(self, item: object) -> bool:
        return True


def ctx(sent: dict[str, set[str]] | None = None) -> GuardContext:
    """*sent*: our Message-ID -> its recipients; None = every bounce refers to mail we sent to anyone."""
    def sent_to(ids: list[str]) -> set[str]:
        if sent is None:
            return Everyone()
        return {r for i in ids for r in sent.get(i, set())}

    return GuardContext(support=SUPPORT, sent_to=sent_to)


def mail(headers: str, body: str = "Hello, the CRM login fails since this morning.\n") -> bytes:
    base = "From: Customer <customer@client.example>\nTo: support@example.com\nMessage-ID: <c1@client.example>\n"
    return (base + headers.strip("\n") + "\n\n" + body).encode()


def hit(raw: bytes, context: GuardContext | None = None) -> GuardHit | None:
    return first_hit(parse_message(raw), context or ctx())


def test_normal_support_mail_passes() -> None:
    assert hit(mail("Subject: Login broken")) is None
    assert hit(mail("Subject: Re: [HC-12] Login broken\nAuto-Submitted: no")) is None


def test_customer_reporting_undeliverable_campaign_mails_is_not_a_bounce() -> None:
    assert hit(mail("Subject: Our campaign shows undeliverable mails in the CRM")) is None
    assert hit(mail("Subject: Fwd: Undeliverable: invoice", "Why did this bounce?\n\n---------- Forwarded "
                    "message ----------\nThis is the mail delivery program\n")) is None


DSN = """Subject: Delivery Status Notification (Failure)
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
Return-Path: <>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="r"
"""
DSN_BODY = """--r
Content-Type: text/plain

Delivery to the following recipients failed.

--r
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; Gone.User@client.example
Original-Recipient: rfc822;gone@client.example
Action: failed
Status: 5.1.1

Final-Recipient: rfc822; slow@client.example
Action: delayed
Status: 4.4.1

Final-Recipient: rfc822; support@example.com
Action: failed
Status: 5.0.0

--r
Content-Type: message/rfc822

From: support@example.com
Message-ID: <hc.ack.abc@example.com>
Subject: [HC-3] received

ack
--r--
"""


def test_dsn_hits_and_reports_only_failed_recipients_not_ourselves() -> None:
    result = hit(mail(DSN, DSN_BODY))
    assert result is not None and result.rule == "dsn"
    assert result.bounced == ("gone@client.example", "gone.user@client.example")


def test_feedback_report_arf() -> None:
    raw = mail(
        'Subject: FW: complaint\nMIME-Version: 1.0\n'
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"',
        "--f\nContent-Type: text/plain\n\nabuse report\n--f\nContent-Type: message/feedback-report\n\n"
        "Feedback-Type: abuse\nUser-Agent: x\nVersion: 1\n--f--\n",
    )
    result = hit(raw)
    assert result is not None and result.rule == "feedback_report"
    assert result.bounced == ()


def test_read_receipt() -> None:
    raw = mail(
        'Subject: Read: Login\nMIME-Version: 1.0\n'
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="m"',
        "--m\nContent-Type: text/plain\n\nread\n--m\nContent-Type: message/disposition-notification\n\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n--m--\n",
    )
    assert hit(raw).rule == "read_receipt"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "body", "rule", "bounced"),
    [
        (
            "From: MAILER-DAEMON@mx.client.example\nSubject: failure notice",
            "Hi. This is the qmail-send program at mx.client.example.\n\n<lost@client.example>:\n"
            "Sorry, no mailbox here by that name. (#5.1.1)\n",
            "bounce_sender",
            ("lost@client.example",),
        ),
        (
            "From: postmaster@client.example\nSubject: Undeliverable: [HC-4] received",
            "Your message did not reach some or all of the intended recipients.\n\n"
            "The following recipient(s) cannot be reached:\n\n      nobody@client.example\n",
            "bounce_sender",
            ("nobody@client.example",),
        ),
        (
            "From: Mail System <mailer@relay.example>\nSubject: Mail delivery failed: returning message to sender",
            "This message was created automatically by mail delivery software.\n\n"
            "A message that you sent could not be delivered to one or more of its\nrecipients. "
            "This is a permanent error. The following address(es) failed:\n\n  exim.gone@client.example\n"
            "    SMTP error from remote mail server after RCPT TO\n",
            "bounce_subject",
            ("exim.gone@client.example",),
        ),
        (
            "From: gateway@relay.example\nSubject: RE: your request : non remis",
            "Your message could not be delivered to\nnon.remis@client.example\n",
            "bounce_text",
            ("non.remis@client.example",),
        ),
        (
            "From: gateway@relay.example\nSubject: notice\nX-Failed-Recipients: xf@client.example",
            "see above\n",
            "bounce_subject",
            ("xf@client.example",),
        ),
    ],
)
def test_text_bounces(headers: str, body: str, rule: str, bounced: tuple[str, ...]) -> None:
    raw = ("Message-ID: <b@x>\nIn-Reply-To: <hc.ack.1234@example.com>\nTo: support@example.com\n"
           + headers + "\n\n" + body).encode()
    result = first_hit(parse_message(raw), ctx())
    assert result is not None
    assert (result.rule, result.bounced) == (rule, bounced)


def test_amazon_ses_json_bounce() -> None:
    body = ('{"notificationType":"Bounce","bounce":{"bouncedRecipients":[{"emailAddress":"ses.gone@client.example",'
            '"action":"failed"}]}}\n')
    raw = mail("Subject: AWS Notification Message\nReferences: <hc.ack.99@example.com>", body)
    result = hit(raw)
    assert result is not None and result.rule == "bounce_text"
    assert result.bounced == ("ses.gone@client.example",)


@pytest.mark.parametrize(
    ("headers", "rule"),
    [
        ("Subject: Re: Login\nAuto-Submitted: auto-replied", "auto_submitted"),
        ("Subject: Re: Login\nAuto-Submitted: auto-generated; owner-email=x@y", "auto_submitted"),
        ("Subject: Re: Login\nX-Autoreply: yes", "autoreply_header"),
        ("Subject: Re: Login\nX-Autorespond: yes", "autoreply_header"),
        ("Subject: Re: Login\nX-Auto-Response-Suppress: All", "autoreply_header"),
        ("Subject: Out of Office: Login", "ooo_subject"),
        ("Subject: Automatic reply: Login", "ooo_subject"),
        ("Subject: Abwesenheitsnotiz: Login", "ooo_subject"),
        ("Subject: Automatische Antwort: Login", "ooo_subject"),
        ("Subject: Réponse automatique : Login", "ooo_subject"),
        ("Subject: Respuesta automática: Login", "ooo_subject"),
        ("Subject: Risposta automatica: Login", "ooo_subject"),
        ("Subject: Automatisch antwoord: Login", "ooo_subject"),
        ("Subject: Autosvar: Login", "ooo_subject"),
        ("Subject: Автоматический ответ: Login", "ooo_subject"),
        ("Subject: 自動応答: Login", "ooo_subject"),
        ("Subject: Login\nPrecedence: bulk", "precedence"),
        ("Subject: Login\nPrecedence: junk", "precedence"),
        ("Subject: Login\nPrecedence: list", "precedence"),
        ("Subject: Newsletter\nList-Id: <news.client.example>", "mailing_list"),
        ("Subject: Newsletter\nList-Unsubscribe: <mailto:u@client.example>", "mailing_list"),
        ("Subject: Re: Login\nReturn-Path: <>", "null_sender"),
    ],
)
def test_auto_reply_rules(headers: str, rule: str) -> None:
    result = hit(mail(headers))
    assert result is not None
    assert result.rule == rule
    assert result.reason


def test_precedence_first_class_is_not_an_auto_reply() -> None:
    assert hit(mail("Subject: Login\nPrecedence: first-class")) is None


def test_our_own_mail_by_loop_header_or_message_id() -> None:
    looped = mail(f"Subject: [HC-1] received\n{guards.LOOP_HEADER}: support@example.com")
    assert hit(looped).rule == "own_mail"  # type: ignore[union-attr]
    ours = (b"From: someone@client.example\nMessage-ID: <hc.ack.Zx81@example.com>\nSubject: fwd\n\nhi\n")
    assert first_hit(parse_message(ours), ctx()).rule == "own_mail"  # type: ignore[union-attr]
    foreign = ours.replace(b"@example.com>", b"@other.example>")
    assert first_hit(parse_message(foreign), ctx()) is None


def test_registry_refuses_duplicate_names_and_order_is_literal() -> None:
    with pytest.raises(DuplicateName, match="guard 'dsn' registered twice"):
        GuardRegistry([guards.DeliveryStatus(), guards.DeliveryStatus()])
    names = guards.REGISTRY.names()
    assert names[0] == "own_mail" and names[-1] == "null_sender" and "flood" not in names  # intake.flood
    assert names.index("dsn") < names.index("auto_submitted") < names.index("null_sender")
    for guard in guards.REGISTRY:
        assert guard.name and guard.description


def test_bounce_beats_auto_submitted_so_recipients_are_reported() -> None:
    raw = mail(DSN + "Auto-Submitted: auto-replied", DSN_BODY)
    assert hit(raw).rule == "dsn"  # type: ignore[union-attr]


def test_corpus_rfc3834_auto_replies(corpus_dir: Path) -> None:
    files = sorted((corpus_dir / "sisimai-set-of-emails" / "bsd").glob("rfc3834-*.eml"))
    assert files
    for path in files:
        assert first_hit(parse_message(path.read_bytes()), ctx()) is not None, path.name


def test_corpus_postfix_bounce_recipient(corpus_dir: Path) -> None:
    from intake.guards.bounces import failed_recipients

    path = corpus_dir / "sisimai-set-of-emails" / "bsd" / "lhost-postfix-01.eml"
    parsed = parse_message(path.read_bytes())
    result = first_hit(parsed, ctx())
    assert result is not None and result.rule in {"dsn", "bounce_sender"}
    assert failed_recipients(parsed) and result.bounced == ()  # not about mail we sent: counts against nobody


FORGED = ("From: Stranger <mallory@evil.example>\nSubject: Undeliverable: [HC-1] P1 outage\n"
          "X-Failed-Recipients: ada@example.com, cio@example.com")


def test_a_forged_bounce_counts_against_nobody() -> None:
    result = hit(mail(FORGED, "Delivery failed.\n"), ctx(sent={"hc.p1-new.abcd@example.com": {"ada@example.com"}}))
    assert result is not None and result.rule == "bounce_subject" and result.bounced == ()
    # Quoting a real Message-ID of ours (e.g. from an acknowledgement the stranger got) names only its recipients.
    quoted = mail(FORGED + "\nReferences: <hc.ack.f00d@example.com>", "Delivery failed.\n")
    sent = {"hc.ack.f00d@example.com": {"mallory@evil.example"}, "hc.p1-new.abcd@example.com": {"ada@example.com"}}
    assert hit(quoted, ctx(sent=sent)).bounced == ()  # type: ignore[union-attr]


def test_a_real_bounce_of_our_mail_counts_against_its_recipient_only() -> None:
    sent = {"hc.ack.abc@example.com": {"gone@client.example", "other@client.example"}}
    result = hit(mail(DSN, DSN_BODY), ctx(sent=sent))
    assert result is not None and result.rule == "dsn" and result.bounced == ("gone@client.example",)
