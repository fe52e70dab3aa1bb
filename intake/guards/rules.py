"""Mail that must be recorded but never acknowledged: bounces, reports, auto-replies, our own mail.

Why: answering an out-of-office or a bounce starts mail loops and tells spammers the
address is live; peers do exactly that. Each check is a tiny named rule (Mailman 3
style) in one explicit registry whose order is a literal tuple, so the rule that fired
is recorded with the message and a reader can see at a glance what runs first.
Bounce rules also report which of our recipients bounced (``GuardHit.bounced``).
What bounces and automatic replies look like lives in ``intake.guards.bounces`` and
``intake.guards.autoreplies``; this module only holds the rules, their order and the registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

import config
from core.registry import Registry
from intake.guards.autoreplies import OOO_SUBJECT
from intake.guards.bounces import (
    BOUNCE_SUBJECT,
    BOUNCE_TEXT,
    FORWARD_MARK,
    failed_recipients,
    has_part,
    is_daemon_address,
    is_daemon_name,
    our_message_ids,
    report_type,
)
from intake.parse.message import ParsedMessage
from tickets.our_mail import LOOP_HEADER, MESSAGE_ID_PREFIX, is_our_address


@dataclass(frozen=True)
class GuardHit:
    rule: str
    reason: str
    bounced: tuple[str, ...] = ()  # recipients whose mail from us bounced (from the DSN / bounce text)


def _nobody(message_ids: list[str]) -> set[str]:
    return set()


@dataclass
class GuardContext:
    support: config.SupportSettings
    # Recipients of the mail we sent under these Message-IDs (the pipeline asks the outbox table).
    sent_to: Callable[[list[str]], set[str]] = _nobody


class Guard:
    """One rule: ``check`` returns a hit (never acknowledge) or None (no objection)."""

    name: ClassVar[str]
    description: ClassVar[str]

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:  # pragma: no cover
        raise NotImplementedError

    def hit(self, reason: str, bounced: Iterable[str] = ()) -> GuardHit:
        return GuardHit(self.name, reason, tuple(bounced))


def _bounced(parsed: ParsedMessage, ctx: GuardContext) -> tuple[str, ...]:
    """The failed recipients this bounce may count against: only those we really sent the bounced mail to.

    Why: anyone can write "Undeliverable" and X-Failed-Recipients naming the whole team; one such mail
    used to put them on the bouncing list and silence the next P1 page.  A bounce counts only when it
    carries one of our Message-IDs (unguessable: ``hc.<kind>.<random>``) and the recipient it names was a
    recipient of that very mail.  Our own addresses (often quoted in a bounce) never count.
    """
    failed = [a for a in failed_recipients(parsed) if not is_our_address(ctx.support, a)]
    if not failed:
        return ()
    ids = our_message_ids(parsed, ctx.support.domain, MESSAGE_ID_PREFIX)
    recipients = ctx.sent_to(ids) if ids else set()
    return tuple(a for a in failed if a.lower() in recipients)


class OwnMail(Guard):
    name = "own_mail"
    description = f"our own outgoing mail came back ({LOOP_HEADER} header or one of our Message-IDs)"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        loop = parsed.header(LOOP_HEADER).strip()
        if loop:
            return self.hit(f"{LOOP_HEADER}: {loop[:80]}")
        mid = parsed.message_id.lower()
        if mid.startswith(MESSAGE_ID_PREFIX) and mid.endswith("@" + ctx.support.domain):
            return self.hit(f"Message-ID <{parsed.message_id}> is one of ours")
        return None


class FeedbackReport(Guard):
    name = "feedback_report"
    description = "ARF abuse/feedback-loop report (multipart/report; report-type=feedback-report)"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        if report_type(parsed) == "feedback-report" or has_part(parsed, "message/feedback-report"):
            return self.hit("ARF feedback report")
        if parsed.header("Feedback-Type") or parsed.header("X-HmXmrOriginalRecipient"):
            return self.hit("feedback-loop report header")
        if re.match(r"\s*complaint about message from\b", parsed.subject, re.I):
            return self.hit("Hotmail/Outlook.com JMRP complaint")  # report attached as plain message/rfc822
        return None


class DeliveryStatus(Guard):
    name = "dsn"
    description = "delivery status notification (multipart/report; report-type=delivery-status)"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        report = report_type(parsed)
        if report in ("delivery-status", "global-delivery-status") or has_part(
            parsed, "message/delivery-status", "message/global-delivery-status"
        ):
            return self.hit(f"DSN ({report or 'delivery-status part'})", _bounced(parsed, ctx))
        return None


class ReadReceipt(Guard):
    name = "read_receipt"
    description = "message disposition notification (read receipt, RFC 8098)"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        if report_type(parsed) == "disposition-notification" or has_part(
            parsed, "message/disposition-notification"
        ):
            return self.hit("MDN / read receipt")
        return None


class BounceSender(Guard):
    name = "bounce_sender"
    description = "sent by a mailer daemon or postmaster"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        sender = parsed.from_addr or parsed.header("Sender").lower()
        if is_daemon_address(sender) or is_daemon_name(parsed.from_name):
            return self.hit(f"sender {sender or parsed.from_name!r} is a mail system", _bounced(parsed, ctx))
        return None


class BounceSubject(Guard):
    name = "bounce_subject"
    description = "typical non-delivery subject (Undeliverable, Mail delivery failed, Returned mail...)"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        if BOUNCE_SUBJECT.search(parsed.subject):
            return self.hit(f"bounce subject {parsed.subject[:80]!r}", _bounced(parsed, ctx))
        if parsed.header("X-Failed-Recipients"):
            return self.hit("X-Failed-Recipients header", _bounced(parsed, ctx))
        return None


class BounceText(Guard):
    name = "bounce_text"
    description = "body opens with mail-system bounce wording (qmail, Exim, Exchange) or Amazon SES JSON"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        if re.match(r"\s*(?:fwd?|wg|tr|rv|i)\s*:", parsed.subject, re.I):
            return None  # someone forwarding a bounce to us wants an answer
        head = parsed.body_full[:3000]
        mark = FORWARD_MARK.search(head)
        match = BOUNCE_TEXT.search(head[: mark.start()] if mark else head)
        if match:
            return self.hit(f"bounce wording {match.group(0)[:60]!r}", _bounced(parsed, ctx))
        return None


class AutoSubmitted(Guard):
    name = "auto_submitted"
    description = "RFC 3834 Auto-Submitted other than 'no'"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        value = parsed.header("Auto-Submitted").split(";")[0].strip().lower()
        if value and value != "no":
            return self.hit(f"Auto-Submitted: {value[:40]}")
        return None


class AutoReplyHeaders(Guard):
    name = "autoreply_header"
    description = "X-Autoreply, X-Autorespond, X-Auto-Response-Suppress and similar vendor headers"
    headers: ClassVar[tuple[str, ...]] = (
        "X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response-Suppress",
        "X-Autogenerated", "X-AutoReply-From", "X-Mail-Autoreply", "X-Cron-Env",
    )

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        for name in self.headers:
            if parsed.header(name).strip():
                return self.hit(f"{name} header present")
        if parsed.header("X-MS-Exchange-Generated-Message-Source") or parsed.header(
            "X-MS-Exchange-Inbox-Rules-Loop"
        ):
            return self.hit("Exchange server-generated message")
        return None


class OutOfOfficeSubject(Guard):
    name = "ooo_subject"
    description = "out-of-office / automatic reply subject (en de fr es it nl pt pl nordic ru ja zh)"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        if OOO_SUBJECT.search(parsed.subject):
            return self.hit(f"automatic reply subject {parsed.subject[:80]!r}")
        return None


class Precedence(Guard):
    name = "precedence"
    description = "Precedence: bulk, junk, list or auto_reply"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        value = parsed.header("Precedence").strip().lower()
        if value in ("bulk", "junk", "list", "auto_reply", "auto-reply"):
            return self.hit(f"Precedence: {value}")
        return None


class MailingList(Guard):
    name = "mailing_list"
    description = "mailing list or newsletter traffic (List-Id, List-Unsubscribe)"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        for name in ("List-Id", "List-Unsubscribe", "List-Post", "List-Subscribe", "X-Mailing-List",
                     "X-MLServer", "Mailing-List"):
            if parsed.header(name).strip():
                return self.hit(f"{name} header present")
        return None


class NullSender(Guard):
    name = "null_sender"
    description = "empty Return-Path <> (bounces and automatic replies are sent without one)"

    def check(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        if parsed.msg is None or "Return-Path" not in parsed.msg:
            return None
        value = re.sub(r"\s+", "", parsed.header("Return-Path"))
        if value in ("<>", ""):
            return self.hit("empty Return-Path <>", _bounced(parsed, ctx))
        return None


class GuardRegistry(Registry[Guard]):
    """The guards in their literal order; the first that objects decides."""

    def __init__(self, guards: Iterable[Guard]) -> None:
        super().__init__("guard", guards)

    def first_hit(self, parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
        for guard in self:
            hit = guard.check(parsed, ctx)
            if hit is not None:
                return hit
        return None


# Order matters: cheap, certain rules first; bounce rules before auto-reply rules (a bounce often
# also carries Auto-Submitted, and only bounce rules report the bounced recipients); the null
# sender as catch-all for automatic mail.  Floods are not a guard: see intake.flood (after threading).
REGISTRY = GuardRegistry((
    OwnMail(),
    FeedbackReport(),
    DeliveryStatus(),
    ReadReceipt(),
    BounceSender(),
    BounceSubject(),
    BounceText(),
    AutoSubmitted(),
    AutoReplyHeaders(),
    OutOfOfficeSubject(),
    Precedence(),
    MailingList(),
    NullSender(),
))


def first_hit(parsed: ParsedMessage, ctx: GuardContext) -> GuardHit | None:
    """The first rule that objects to acknowledging *parsed*, or None for a normal support mail."""
    return REGISTRY.first_hit(parsed, ctx)
