"""Make a parsed mail storable: the one cleaning step between parsing and the database.

Why a stage of its own: "the database cannot be reached" (retry later) and "this value cannot be
stored" (a NUL byte PostgreSQL refuses, a lone surrogate no UTF-8 driver encodes, a display name
longer than its column) must never look alike.  Before this step the second looked like the first:
one mail made SMTP answer 451 forever and blocked an IMAP mailbox for good.  Here every text the
later stages store is cleaned once, and each change is said in the message's ``notes`` (visible in
``show``), so nothing is altered silently.  The column sizes are read from the models, never
repeated.
"""

from __future__ import annotations

from core.untrusted_text import storable
from intake.parse.message import ParsedMessage
from tickets.models import Message, Ticket

SUBJECT_CHARS = 998  # RFC 5322's line limit: a longer subject is cut (folding 78 KB cost 2.6 s per mail out)
MAX_NOTES = 50  # a bomb of undecodable words must not become 10,000 notes
MAX_ADDRESSES = 1000  # To/Cc lists kept on the message row
MAX_REFERENCES = 100


def _length(column: object) -> int:
    return int(getattr(getattr(column, "type", None), "length", 0) or 0)


ADDRESS_CHARS = min(_length(Ticket.__table__.c.reporter), _length(Message.__table__.c.from_addr))
NAME_CHARS = min(_length(Ticket.__table__.c.reporter_name), _length(Message.__table__.c.from_name))
MESSAGE_ID_CHARS = min(_length(Message.__table__.c.message_id), _length(Message.__table__.c.in_reply_to))


EXCERPT_BYTES = 64 * 1024  # of the body, kept with the headers of mail whose full raw bytes are not kept
_MARK = b"\n[hypercare: the rest of this message was not kept]\n"


def raw_excerpt(raw: bytes, limit: int = EXCERPT_BYTES) -> bytes:
    """The header block and the first *limit* bytes of the body: what ignored mail keeps.

    Why: floods, bulk mail and auto-replies were stored whole (50 MB each) without any cap or
    retention; the headers and an excerpt are enough to see what it was and why it was ignored.
    """
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    head_end = len(raw) if end < 0 else end
    if len(raw) - head_end <= limit + 4:
        return raw
    return raw[:head_end + 4 + limit] + _MARK


def make_storable(parsed: ParsedMessage) -> ParsedMessage:
    """Clean *parsed* in place (NUL, surrogates, over-long values) and note each change; returns it."""
    notes: list[str] = []

    def text(field: str, value: str, limit: int | None = None) -> str:
        value, changed = storable(value)
        notes.extend(f"{field}: {what}" for what in changed)
        if limit is not None and len(value) > limit:
            notes.append(f"{field}: {len(value)} characters truncated to {limit}")
            value = value[:limit]
        return value

    def addresses(field: str, values: list[str]) -> list[str]:
        if len(values) > MAX_ADDRESSES:
            notes.append(f"{field}: {len(values)} addresses, only the first {MAX_ADDRESSES} kept")
            values = values[:MAX_ADDRESSES]
        return [text(field, v, ADDRESS_CHARS) for v in values]

    parsed.message_id = text("Message-ID", parsed.message_id, MESSAGE_ID_CHARS)
    parsed.in_reply_to = text("In-Reply-To", parsed.in_reply_to, MESSAGE_ID_CHARS) if parsed.in_reply_to else None
    if len(parsed.references) > MAX_REFERENCES:  # keep the thread's root and the newest ids
        notes.append(f"References: {len(parsed.references)} ids, {MAX_REFERENCES} kept")
        parsed.references = parsed.references[:1] + parsed.references[1 - MAX_REFERENCES:]
    parsed.references = [text("References", r, MESSAGE_ID_CHARS) for r in parsed.references]
    parsed.subject = text("Subject", parsed.subject, SUBJECT_CHARS)
    parsed.from_addr = text("From address", parsed.from_addr, ADDRESS_CHARS)
    parsed.from_name = text("From name", parsed.from_name, NAME_CHARS)
    parsed.to = addresses("To", parsed.to)
    parsed.cc = addresses("Cc", parsed.cc)
    parsed.reply_to = addresses("Reply-To", parsed.reply_to)
    parsed.envelope_recipients = addresses("envelope", parsed.envelope_recipients)
    parsed.body_full = text("body", parsed.body_full)
    parsed.body = text("body", parsed.body)
    for attachment in parsed.attachments:
        attachment.filename = text("attachment name", attachment.filename, 255)
        attachment.content_type = text("attachment type", attachment.content_type, 255)
    kept = [storable(n)[0][:500] for n in parsed.notes[:MAX_NOTES]]
    if len(parsed.notes) > MAX_NOTES:
        kept.append(f"{len(parsed.notes) - MAX_NOTES} more decoding notes left out")
    parsed.notes = kept + list(dict.fromkeys(notes))
    return parsed
