"""Raw mail bytes -> ``MailFacts`` for the dry-run tools (classify, rules eval, rules replay).

Why here and lazy: the tools must classify a mail exactly as ingest does, so they use
``intake.parse.parse_message`` when it is there; the small stdlib fallback only keeps
the classifier usable on its own (and in its own tests) if intake cannot be imported.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from classifier.facts import MailFacts
from intake.message import ParsedAttachment, ParsedMessage

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


class UnreadableMail(Exception):
    """The bytes could not be read as a mail; the message says why."""


def parse_bytes(raw: bytes, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES) -> ParsedMessage:
    """Parse with the intake parser if present, else with the stdlib fallback."""
    try:
        from intake.parse import parse_message
    except ImportError:
        return _fallback_parse(raw)
    try:
        return parse_message(raw, max_attachment_bytes=max_attachment_bytes)
    except Exception as exc:  # noqa: BLE001 - UnparseableMessage and any parser bug: one line for the user
        raise UnreadableMail(str(exc) or exc.__class__.__name__) from None


def facts_from_bytes(raw: bytes, fallback_time: datetime,
                     max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
                     received_at: datetime | None = None) -> MailFacts:
    """Facts of a raw mail; time is *received_at*, else the mail's Date header, else *fallback_time*."""
    parsed = parse_bytes(raw, max_attachment_bytes)
    when = received_at or parsed.date or fallback_time
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return MailFacts.from_parsed(parsed, when)


def _fallback_parse(raw: bytes) -> ParsedMessage:
    msg: Any = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(msg, EmailMessage):
        raise UnreadableMail("not a MIME message")

    def addresses(name: str) -> list[str]:
        try:
            return [a.lower() for _, a in getaddresses([str(v) for v in msg.get_all(name) or []]) if a]
        except Exception:  # noqa: BLE001 - a broken header yields no addresses, not a failure
            return []

    try:
        date = parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    body = ""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
        if part is not None:
            body = part.get_content()
            if part.get_content_type() == "text/html":
                body = re.sub(r"<[^>]+>", " ", body)
    except Exception:  # noqa: BLE001 - undecodable body: classify on the subject
        body = ""
    attachments = []
    for part in msg.iter_attachments():
        payload = part.get_payload(decode=True) or b""
        attachments.append(ParsedAttachment(part.get_filename() or "", part.get_content_type(), len(payload),
                                            hashlib.sha256(payload).hexdigest(), None))
    sender = addresses("From")
    digest = hashlib.sha256(raw).hexdigest()
    return ParsedMessage(
        raw=raw, message_id=str(msg["Message-ID"] or digest).strip("<> "), has_message_id=bool(msg["Message-ID"]),
        content_hash=digest, subject=str(msg["Subject"] or ""), from_addr=sender[0] if sender else "",
        from_name="", to=addresses("To"), cc=addresses("Cc"), date=date, body_full=body, body=body,
        attachments=attachments, msg=msg,
    )
