"""Retention: ``hypercare purge --before DATE`` removes raw mail bytes the desk no longer needs.

Why only raw bytes: the ticket history (decoded subject, body, events, attachments' names and hashes)
is the record the hand-over and the digests need; the raw MIME of every mail - whole for tickets,
headers and an excerpt for ignored mail - is what grows and what holds personal data.  Purged are the
raw bytes of messages of tickets resolved or closed before DATE, of ignored mail received before DATE,
and of quarantine items already replayed before DATE.  Held quarantine items keep theirs (they are
waiting for a replay).  ``--dry-run`` reports the same figures and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from tickets.models import CLOSED_STATUSES, Message, QuarantineItem, Ticket


@dataclass(frozen=True)
class PurgeReport:
    messages: int
    quarantined: int
    bytes: int

    def line(self, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        return (f"{verb} the raw bytes of {self.messages} message(s) and {self.quarantined} replayed quarantine "
                f"item(s): {self.bytes} bytes")


def purge_raw(session: Session, before: datetime, *, dry_run: bool) -> PurgeReport:
    closed = select(Ticket.id).where(Ticket.status.in_(CLOSED_STATUSES), Ticket.updated_at < before)
    messages = (Message.direction == "in") & (func.length(Message.raw) > 0) & or_(
        Message.ticket_id.in_(closed), (Message.disposition == "ignored") & (Message.received_at < before))
    items = (QuarantineItem.status == "replayed") & (QuarantineItem.replayed_at < before) & (
        func.length(QuarantineItem.raw) > 0)
    count, size = session.execute(select(func.count(Message.id), func.coalesce(func.sum(func.length(Message.raw)), 0))
                                  .where(messages)).one()
    q_count, q_size = session.execute(select(func.count(QuarantineItem.id), func.coalesce(
        func.sum(func.length(QuarantineItem.raw)), 0)).where(items)).one()
    if not dry_run:
        options = {"synchronize_session": False}
        session.execute(update(Message).where(messages).values(raw=b""), execution_options=options)
        session.execute(update(QuarantineItem).where(items).values(raw=b""), execution_options=options)
    return PurgeReport(int(count), int(q_count), int(size) + int(q_size))
