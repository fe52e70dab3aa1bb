"""Build outgoing MIME messages, headers only through the ``email`` API.

Why here: every mail we send must carry our Message-ID (so replies thread), our loop
header (so our own mail coming back is never answered) and the right
``Auto-Submitted`` value; and no subject or display name may inject a header.
The modern ``EmailMessage`` API refuses CR/LF in header values, which we rely on.
"""

from __future__ import annotations

import re
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


_ADDR_SPEC = re.compile(r"[!#-'*+\-/-9=?A-Z^-~.]+@[A-Za-z0-9.-]+")  # RFC 5321 dot-atom, ASCII only
_MSGID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII without spaces, '<' or '>'
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class BadAddress(ValueError):
    """An address that cannot safely go into a header or an SMTP command (CR/LF, spaces, no domain)."""


def clean_address(value: str) -> str:
    """*value* as a bare addr-spec, or BadAddress: nothing with CR/LF, spaces or brackets gets through."""
    candidate = value.strip()
    if not _ADDR_SPEC.fullmatch(candidate):
        raise BadAddress(f"not a plain email address: {value!r}")
    return candidate


def clean_message_id(value: str) -> str | None:
    """A Message-ID without its angle brackets, or None when it carries anything a header must not."""
    candidate = value.strip().strip("<>")
    return candidate if _MSGID.fullmatch(candidate) else None


def sanitize_header_text(value: str) -> str:
    """Fold any CR/LF/control characters a user put into a subject or name into spaces."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def build_mime(
    mail: OutgoingMail, *, sender_address: str, sender_name: str, message_id: str, date: datetime
) -> EmailMessage:
    """The MIME message of *mail*; every header value is cleaned or built as an object, so no
    CR/LF from a subject, a name, an address or a Message-ID can ever start a header of its own."""
    msg = EmailMessage()
    msg["From"] = Address(display_name=sanitize_header_text(sender_name), addr_spec=clean_address(sender_address))
    msg["To"] = [Address(addr_spec=clean_address(a)) for a in mail.to]
    msg["Subject"] = sanitize_header_text(mail.subject)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{clean_message_id(message_id) or new_message_id(mail.kind, 'localhost')}>"
    if mail.reply_to:
        msg["Reply-To"] = Address(addr_spec=clean_address(mail.reply_to))
    in_reply_to = clean_message_id(mail.in_reply_to) if mail.in_reply_to else None
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = list(dict.fromkeys(r for r in (clean_message_id(x) for x in mail.references if x) if r))
    if in_reply_to and in_reply_to not in refs:
        refs.append(in_reply_to)
    if refs:
        # The root and the newest 19: RFC 5322 3.6.4 trimming keeps the first and the last ones.
        kept = refs if len(refs) <= 20 else [refs[0], *refs[-19:]]
        msg["References"] = " ".join(f"<{r}>" for r in kept)
    msg["Auto-Submitted"] = mail.auto_submitted
    msg[LOOP_HEADER] = sender_address
    # Ask Exchange and friends not to answer us with out-of-office replies.
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in mail.extra_headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        msg[name] = sanitize_header_text(value)
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
    return msg
