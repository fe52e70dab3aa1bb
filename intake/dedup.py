"""Deduplicate: the same mail delivered twice changes nothing the second time.

Why a stage of its own: every receiver delivers at least once (an IMAP crash before the
MOVE, an MTA retrying after a lost 250, two instances polling one mailbox), so exactly-once
*effect* rests here.  A mail is the same when its Message-ID is, or, for a mail without
one, when its content hash is.  A second instance storing the same Message-ID at the same
moment is caught by the unique index when the message row is written; ``judge_conflict``
then *looks* before calling it a duplicate, because other unique keys (a ticket number, a
counter row) fail the same way and such a mail must be retried or quarantined, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import bindparam, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.parse.message import ParsedMessage
from tickets.models import Message
from tickets.store import rows_in

_MESSAGES = Message.__table__
# Built once (``tickets.store.rows_in``): a batch's look-ups are paid per SMTP group of a few mails.
_STORED = {name: select(_MESSAGES.c[name]).where(_MESSAGES.c[name].in_(bindparam("values", expanding=True)))
           for name in ("message_id", "content_hash")}
# How often one mail is stored again after a uniqueness conflict that was not its own duplicate.
CONFLICT_ATTEMPTS = 3


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
        return cls(_stored(session, "message_id", {p.message_id for p in batch}),
                   _stored(session, "content_hash", {p.content_hash for p in batch if not p.has_message_id}))

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


def _stored(session: Session, column: str, values: set[str]) -> set[str]:
    """Which of *values* the messages table holds in *column* (message_id or content_hash)."""
    return {row[0] for row in rows_in(session, _STORED[column], values)}


@dataclass(frozen=True)
class Conflict:
    """What a uniqueness error while storing one mail means: ``duplicate``, ``retry`` or ``quarantine``."""

    verdict: str
    reason: str


def judge_conflict(session: Session, parsed: ParsedMessage, error: IntegrityError, attempt: int,
                   attempts: int = CONFLICT_ATTEMPTS) -> Conflict:
    """Decide by looking, after the failed SAVEPOINT was rolled back (any write path may call it).

    The same Message-ID (or content hash) now stored -> a concurrent copy: duplicate.  Anything else
    (a counter row, a ticket number) -> store the mail again, *attempts* times in all; then quarantine
    with the database's reason.  Before issue 11 every such error was called a duplicate, and accepted
    mail was answered 250 and dropped.
    """
    if find_duplicate(session, parsed) is not None:
        return Conflict("duplicate", "stored concurrently")
    detail = str(error.orig).strip().splitlines()[0][:300] if error.orig is not None else str(error)[:300]
    if attempt < attempts:
        return Conflict("retry", f"uniqueness conflict (attempt {attempt}): {detail}")
    return Conflict("quarantine", f"uniqueness conflict not resolved after {attempt} attempts: {detail}")
