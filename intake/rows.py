"""A parsed mail as ``messages`` and ``attachments`` column values.

Why its own module: the per-message path (``intake.pipeline``) makes ORM objects of these
values and the batched write path (``intake.batch_store``) inserts them with one statement
per table; one function per row kind keeps both paths storing the same thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import set_committed_value

from intake.parse.message import ParsedAttachment, ParsedMessage
from intake.storable import raw_excerpt
from tickets.attachments import AttachmentStore
from tickets.models import Message

BIG_RAW_BYTES = 1 << 20  # on SQLite, raw bytes over this are written after the row, 1 MiB at a time


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


def hold_big_raws(connection: Connection, rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bytes]]:
    """On SQLite, take each raw over ``BIG_RAW_BYTES`` out of its ``messages`` row (b"" is inserted);
    ``write_raw`` puts it in once the row has its id.  Other databases: nothing is held."""
    if connection.dialect.name != "sqlite":
        return []
    held = [(values, values["raw"]) for values in rows if len(values.get("raw") or b"") > BIG_RAW_BYTES]
    for values, _raw in held:
        values["raw"] = b""
    return held


def write_raw(connection: Connection, message_id: int, raw: bytes) -> None:
    """Write *raw* into the row's ``messages.raw`` through SQLite's incremental blob I/O, 1 MiB at a time.

    Why: SQLite keeps two copies of a bound blob while it inserts it (the bound value and the row's
    record), so storing a 48 MB mail raised the process's peak RSS by ~100 MB on top of the mail;
    a zeroblob is never materialised (``raw`` is the table's last column) and the blob is then
    filled in place, in the same transaction (a rolled-back savepoint takes it back too).
    """
    connection.execute(text("UPDATE messages SET raw = zeroblob(:size) WHERE id = :id"),
                       {"size": len(raw), "id": message_id})
    view = memoryview(raw)
    with connection.connection.driver_connection.blobopen("messages", "raw", message_id) as blob:
        for start in range(0, len(raw), BIG_RAW_BYTES):
            blob.write(view[start:start + BIG_RAW_BYTES])


@event.listens_for(Message, "before_insert")
def _hold_big_raw(_mapper: Mapper[Message], connection: Connection, message: Message) -> None:
    """The per-message (ORM) path: the same as ``hold_big_raws`` for one row."""
    held = hold_big_raws(connection, [{"raw": message.raw}])
    if held:
        message.__dict__["_held_raw"] = held[0][1]
        message.raw = b""


@event.listens_for(Message, "after_insert")
def _write_held_raw(_mapper: Mapper[Message], connection: Connection, message: Message) -> None:
    raw = message.__dict__.pop("_held_raw", None)
    if raw is not None:
        write_raw(connection, message.id, raw)
        set_committed_value(message, "raw", raw)  # what the row now holds; not a change to flush again
