"""Raw mail bytes -> ``MailFacts`` for the dry-run tools (classify, rules eval, rules replay).

Why through the intake parser: the tools must classify a mail exactly as ingest does, so
they read it with ``intake.parse.parse_message`` (the one edge from the classifier into
intake: parsing sits below both).
"""

from __future__ import annotations

from datetime import UTC, datetime

from classifier.facts import MailFacts
from core.errors import UserError
from intake.parse.message import ParsedMessage
from intake.parse.parser import parse_message

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


class UnreadableMail(UserError):
    """The bytes could not be read as a mail; the message says why."""


def parse_bytes(raw: bytes, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES) -> ParsedMessage:
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
