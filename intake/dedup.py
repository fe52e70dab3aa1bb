"""Deduplicate: the same mail delivered twice changes nothing the second time.

Why a stage of its own: every receiver delivers at least once (an IMAP crash before the
MOVE, an MTA retrying after a lost 250, two instances polling one mailbox), so exactly-once
*effect* rests here.  A mail is the same when its Message-ID is, or, for a mail without
one, when its content hash is.  A second instance storing the same Message-ID at the same
moment is caught by the unique index when the message row is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from intake.parse.message import ParsedMessage
from tickets.models import Message

_CHUNK = 500  # bound the IN (...) lists


@dataclass
class KnownMessages:
    """Message-IDs and content hashes a batch may collide with: one ``IN`` query per batch.

    A mail absent from these cannot be a duplicate, so most mails cost no dedup query; a mail
    present is still checked with ``find_duplicate`` (the set may hold what this batch stored).
    """

    ids: set[str] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)

    @classmethod
    def of_batch(cls, session: Session, batch: Iterable[ParsedMessage]) -> KnownMessages:
        batch = list(batch)
        return cls(_stored(session, Message.message_id, {p.message_id for p in batch}),
                   _stored(session, Message.content_hash, {p.content_hash for p in batch if not p.has_message_id}))

    def may_contain(self, parsed: ParsedMessage) -> bool:
        return parsed.message_id in self.ids or (not parsed.has_message_id and parsed.content_hash in self.hashes)

    def add(self, parsed: ParsedMessage) -> None:
        self.ids.add(parsed.message_id)
        self.hashes.add(parsed.content_hash)


def find_duplicate(session: Session, parsed: ParsedMessage) -> Message | None:
    """The stored message *parsed* duplicates, or None."""
    condition = Message.message_id == parsed.message_id
    if not parsed.has_message_id:
        condition = or_(condition, Message.content_hash == parsed.content_hash)
    return session.scalars(select(Message).where(condition).limit(1)).first()


def _stored(session: Session, column: Any, values: set[str]) -> set[str]:
    found: set[str] = set()
    ordered = sorted(values)
    for start in range(0, len(ordered), _CHUNK):
        found.update(session.scalars(select(column).where(column.in_(ordered[start:start + _CHUNK]))))
    return found
