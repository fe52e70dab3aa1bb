"""A parsed mail as ``messages`` and ``attachments`` column values.

Why its own module: the per-message path (``intake.pipeline``) makes ORM objects of these
values and the batched write path (``intake.batch_store``) inserts them with one statement
per table; one function per row kind keeps both paths storing the same thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from intake.parse.message import ParsedAttachment, ParsedMessage
from intake.storable import raw_excerpt
from tickets.attachments import AttachmentStore


def message_values(parsed: ParsedMessage, source: str, now: datetime, *, disposition: str,
                   rule: str | None = None) -> dict[str, Any]:
    """The ``messages`` row of an inbound mail (no ``ticket_id``: the caller knows it)."""
    raw, notes = parsed.raw, parsed.notes
    # Ignored mail, and mail whose attachment was too big to keep, keep headers and an excerpt only.
    if disposition == "ignored" or any(a.payload is None for a in parsed.attachments):
        raw = raw_excerpt(raw)
        if len(raw) < len(parsed.raw):
            notes = [*notes, f"raw bytes kept as the headers and an excerpt ({len(parsed.raw)} bytes received)"]
    return {
        "message_id": parsed.message_id, "content_hash": parsed.content_hash, "direction": "in",
        "disposition": disposition, "rule": rule, "from_addr": parsed.from_addr, "from_name": parsed.from_name,
        "to_addrs": parsed.to, "cc_addrs": parsed.cc, "subject": parsed.subject, "body": parsed.body,
        "body_full": parsed.body_full, "in_reply_to": parsed.in_reply_to, "references": parsed.references,
        "received_at": now, "source": source, "notes": notes, "raw": raw,
    }


def attachment_values(files: AttachmentStore, attachment: ParsedAttachment) -> dict[str, Any]:
    """The ``attachments`` row (no ``message_id``); the file is written content-addressed first
    (before commit: an orphan file after a rollback is harmless)."""
    stored = "omitted"
    if attachment.payload is not None:
        files.put(attachment.payload, attachment.sha256)
        stored = "file"
    return {"filename": attachment.filename[:255], "content_type": attachment.content_type[:255],
            "size": attachment.size, "sha256": attachment.sha256, "stored": stored}
