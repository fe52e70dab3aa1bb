"""Build outgoing MIME messages, headers only through the ``email`` API.

Why here: every mail we send must carry our Message-ID (so replies thread), our loop
header (so our own mail coming back is never answered) and the right
``Auto-Submitted`` value; and no subject or display name may inject a header.
The modern ``EmailMessage`` API refuses CR/LF in header values, which we rely on.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

LOOP_HEADER = "X-Hypercare-Loop"
MESSAGE_ID_PREFIX = "hc."


@dataclass
class OutgoingMail:
    """What a notifier wants to send, before it becomes bytes."""

    kind: str  # ack | escalation | status_daily | ...
    to: Sequence[str]
    subject: str
    text: str
    html: str | None = None
    reply_to: str | None = None
    in_reply_to: str | None = None  # bare Message-ID, no angle brackets
    references: Sequence[str] = ()
    auto_submitted: str = "auto-replied"  # auto-replied (answers) | auto-generated (digests)
    extra_headers: dict[str, str] = field(default_factory=dict)


def new_message_id(kind: str, domain: str) -> str:
    """``hc.<kind>.<random>@<domain>``: recognisable by the loop guard and unique."""
    return f"{MESSAGE_ID_PREFIX}{kind}.{secrets.token_hex(10)}@{domain}"


def sanitize_header_text(value: str) -> str:
    """Fold any CR/LF/control characters a user put into a subject or name into spaces."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def build_mime(
    mail: OutgoingMail, *, sender_address: str, sender_name: str, message_id: str, date: datetime
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = Address(display_name=sanitize_header_text(sender_name), addr_spec=sender_address)
    msg["To"] = ", ".join(mail.to)
    msg["Subject"] = sanitize_header_text(mail.subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{message_id}>"
    if mail.reply_to:
        msg["Reply-To"] = mail.reply_to
    if mail.in_reply_to:
        msg["In-Reply-To"] = f"<{mail.in_reply_to}>"
    refs = [r for r in mail.references if r]
    if mail.in_reply_to and mail.in_reply_to not in refs:
        refs.append(mail.in_reply_to)
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs[-20:])
    msg["Auto-Submitted"] = mail.auto_submitted
    msg[LOOP_HEADER] = sender_address
    # Ask Exchange and friends not to answer us with out-of-office replies.
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in mail.extra_headers.items():
        msg[name] = sanitize_header_text(value)
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
    return msg
