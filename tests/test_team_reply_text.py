"""Only what the member wrote goes out, and refusals are quiet (issue 13).

End to end through the real SMTP intake and relay on SQLite and PostgreSQL: replies in the
Outlook, Gmail, Apple Mail and Thunderbird styles to the real escalation mail; the quote
stripping itself against the reply bodies of the corpus.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest
from desk_kit import ADA, P3_MAIL, REPORTER, SUPPORT
from reply_kit import TOKEN_RE, Desk, mail, reply_to_of, report_by_smtp

from intake.parse.quotes import new_text


def _escalation(desk: Desk, clock: Any) -> tuple[str, Any]:
    key = report_by_smtp(desk, *P3_MAIL, sender=REPORTER, message_id="req-1@customer.example")
    desk.flush()
    clock.advance(hours=5)
    desk.app.escalator.sweep()
    [page] = desk.to(ADA.email, desk.flush())
    return key, page


def _quoted(page: Any, style: str) -> str:
    """The escalation *page* as each mail client quotes it under a reply."""
    text = page.message.get_body(("plain",)).get_content()
    quoted = "".join(f"> {line}\n" if line else ">\n" for line in text.splitlines())
    subject = page.message["Subject"]
    if style == "outlook":  # nothing quoted with '>': a header block, then the original as it was
        return ("\n________________________________\nFrom: CRM Hypercare Support <support@example.com>\n"
                f"Sent: Monday, November 23, 2026 3:00 PM\nTo: Ada Admin <ada@example.com>\nSubject: {subject}\n\n"
                + text)
    if style == "gmail":
        return ("\n\nOn Mon, Nov 23, 2026 at 3:00\u202fPM CRM Hypercare Support <\nsupport@example.com> wrote:\n\n"
                + quoted)
    if style == "apple":
        return ("\n\n> On 23. Nov 2026, at 15:00, CRM Hypercare Support <support@example.com> wrote:\n>\n"
                + quoted)
    assert style == "thunderbird"
    return "\n\nOn 23.11.26 15:00, CRM Hypercare Support wrote:\n" + quoted


STYLES = ("outlook", "gmail", "apple", "thunderbird")


def _reply(desk: Desk, page: Any, key: str, body: str, message_id: str) -> None:
    address = reply_to_of(page)
    desk.send(mail(sender=ADA.email, to=address, subject=f"RE: {page.message['Subject']}", body=body,
                   name="Ada Admin", message_id=message_id, in_reply_to=page.message["Message-ID"].strip("<>")),
              address, ADA.email)


@pytest.mark.parametrize("style", STYLES)
def test_quote_only_reply_sends_nothing_and_is_no_first_response(desk, clock, style):
    key, page = _escalation(desk, clock)
    _reply(desk, page, key, _quoted(page, style), f"empty-{style}@example.com")
    t = desk.ticket(key)
    assert t.first_response_at is None and t.response_met is None and t.status == "new"
    assert not desk.events(key, "answered") and not desk.events(key, "first_response")
    [comment] = desk.events(key, "comment")
    assert comment.actor == ADA.email and "no text of its own" in comment.data["reason"]
    sent = desk.flush()
    assert not [d for d in sent if REPORTER in d.recipients]
    [notice] = desk.to(ADA.email, sent)
    assert notice.message["Subject"].startswith(f"[{key}] Nothing sent")
    body = notice.message.get_body(("plain",)).get_content()
    assert "nothing sent: your reply had no text of its own" in body and len(body) < 800
    # The escalation goes on: the ticket is still unanswered.
    clock.advance(hours=3)
    assert desk.app.escalator.sweep().escalated


@pytest.mark.parametrize("style", STYLES)
def test_only_the_new_text_reaches_the_reporter(desk, clock, style):
    key, page = _escalation(desk, clock)
    _reply(desk, page, key, "#ack\n\nHello Maria,\nthe label is fixed now.\n\nAda\n" + _quoted(page, style),
           f"text-{style}@example.com")
    sent = desk.flush()
    [answer] = [d for d in sent if d.recipients == [REPORTER]]
    text = answer.message.get_body(("plain",)).get_content()
    assert "the label is fixed now." in text
    for internal in ("Why P3", "Reporter:", "Escalation", "#ack", "first-response time", "support+", ">"):
        assert internal not in text, (style, internal)
    assert not TOKEN_RE.search(answer.data.decode())
    t = desk.ticket(key)
    assert t.first_response_at is not None and t.assignee == ADA.email


def test_refusals_are_quiet_never_quote_and_are_counted(desk, clock):
    """30 forged team mails with a phishing line: one refusal without the line, 30 audit events, status counts."""
    from dashboard.status import cmd_status

    key = report_by_smtp(desk, *P3_MAIL, sender=REPORTER)
    desk.flush()
    phishing = "URGENT: verify your password at http://evil.example/login"
    for i in range(30):
        raw = mail(sender=ADA.email, to=f"support+{key}@example.com", subject=f"Re: [{key}] {phishing}",
                   body=f"#resolve {phishing}\n\n{phishing}", name="Ada Admin", message_id=f"forged-{i}@evil.example")
        desk.send(raw, f"support+{key}@example.com", ADA.email)
    t = desk.ticket(key)
    assert (t.status, t.resolved_at) == ("new", None)
    refused = desk.events(key, "refused")
    assert len(refused) == 30 and sum(r.data["answered"] for r in refused) == 1
    sent = desk.flush()
    [refusal] = desk.to(ADA.email, sent)
    assert "Not done" in refusal.message["Subject"]
    for part in ("plain", "html"):
        shown = refusal.message.get_body((part,)).get_content()
        assert "evil.example" not in shown and "verify your password" not in shown
    assert not [d for d in sent if REPORTER in d.recipients]
    desk.app.out = io.StringIO()
    cmd_status(desk.app, argparse.Namespace(json=False))
    assert "replies: 30 refused in the last 24 h from 1 sender(s), 1 answered, 29 quiet" in desk.app.out.getvalue()
    # An hour later the sender hears again (once).
    clock.advance(minutes=61)
    for i in range(2):
        raw = mail(sender=ADA.email, to=SUPPORT, subject=f"Re: [{key}] x", body="#ack", message_id=f"late-{i}@x")
        desk.send(raw, SUPPORT, ADA.email)
    assert len(desk.to(ADA.email, desk.flush())) == 1


# --- the quote stripping, on the corpus's reply bodies -------------------------------------------

# (file, the line where the quoted mail starts): Outlook (English, German, iOS), Gmail (split "wrote:"),
# Apple Mail on iPhone, Thunderbird-style "On ... wrote:" and "-----Original Message-----".
CORPUS_REPLIES = [
    ("crisp-email-reply-parser/email_outlook_split_line_from.txt", "From: Human Resources"),
    ("crisp-email-reply-parser/email_german_outlook.txt", "-----Ursprüngliche Nachricht-----"),
    ("crisp-email-reply-parser/email_ios_outlook.txt", "Get Outlook for iOS"),
    ("crisp-email-reply-parser/email_original_message.txt", "-----original message-----"),
    ("crisp-email-reply-parser/email_gmail_split_line_from.txt", "On Mon, Aug 26, 2019"),
    ("zapier-email-reply-parser/email_gmail.txt", "On Wed, May 18, 2016"),
    ("crisp-email-reply-parser/email_iphone.txt", "Sent from my iPhone"),
]


@pytest.mark.parametrize("name, quote_starts", CORPUS_REPLIES)
def test_new_text_of_corpus_replies(corpus_dir: Path, name: str, quote_starts: str):
    body = (corpus_dir / name).read_text(encoding="utf-8", errors="replace")
    cut = body.index(quote_starts)
    assert cut > 0
    answer = new_text(body)
    assert answer and answer.splitlines()[0] == body.lstrip().splitlines()[0]
    assert quote_starts.strip() not in answer and not any(line.startswith(">") for line in answer.splitlines())
    # The same reply with nothing typed above the quote has no text of its own.
    assert new_text(body[cut:]) == "" and new_text("\n\n" + body[cut:]) == ""


def test_new_text_keeps_a_bottom_posted_answer_without_the_quote(corpus_dir: Path):
    answer = new_text((corpus_dir / "github-email_reply_parser/email_1_2.txt").read_text())
    assert answer.startswith("Hi,\n\nYou can list the keys for the bucket")
    assert "Abhishek Kona wrote" not in answer and "What is the best way" not in answer


def test_new_text_of_quote_only_corpus_mail(corpus_dir: Path):
    assert new_text((corpus_dir / "discourse-email_reply_trimmer/emails/quote_only.txt").read_text()) == ""


@pytest.mark.parametrize("hostile", ["\x00" * 1000, "> \x00\n" * 10_000, "#ack\x00\n> x\n",
                                     "From: a\nSent: b\n" * 5000, "\ud800".encode("utf-8", "surrogatepass")
                                     .decode("utf-8", "replace") * 100, "x" * 3_000_000])
def test_new_text_survives_hostile_bodies(hostile: str):
    result = new_text(hostile)
    assert isinstance(result, str) and len(result) <= len(hostile)


def test_new_text_of_html_only_replies():
    """Gmail and Outlook on the web send HTML only: the quote is a blockquote or a From:/Sent: block."""
    from intake.parse.parser import html_to_text

    gmail_quote = ('<div class="gmail_quote"><div class="gmail_attr">On Mon, Nov 23, 2026 at 3:00 PM CRM Hypercare '
                   'Support &lt;support@example.com&gt; wrote:<br></div><blockquote class="gmail_quote">50% of the '
                   'first-response time<br>Why P3: cosmetic</blockquote></div>')
    outlook_quote = ('<div id="divRplyFwdMsg"><b>From:</b> CRM Hypercare Support &lt;support@example.com&gt;<br>'
                     '<b>Sent:</b> Monday, November 23, 2026 3:00 PM<br><b>To:</b> Ada Admin<br>'
                     '<b>Subject:</b> [HC-1] Escalation 50%</div><div>50% of the first-response time<br>'
                     'Why P3: cosmetic</div>')
    for quote in (gmail_quote, outlook_quote):
        assert new_text(html_to_text('<div dir="ltr"><br></div>' + quote)) == ""
        answer = new_text(html_to_text('<div dir="ltr">Fixed it, Maria.</div><br>' + quote))
        assert answer == "Fixed it, Maria."
