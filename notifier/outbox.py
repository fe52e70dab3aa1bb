"""The durable outbox: mail is enqueued in the same transaction as the change that
caused it, and a worker sends it later.

Why: a crash between "ticket stored" and "acknowledgement sent" must never lose the
acknowledgement, and a restart must never send it twice.  Each row has an
idempotency key (``ack:<message-id>``, ``escalation:HC-3:0.5``), so enqueueing is
repeatable; the worker claims due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
the write lock on SQLite), sends, and marks them sent.  Temporary failures retry
with exponential backoff and jitter; permanent ones end as ``dead`` with the
server's answer.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.policy import SMTP as SMTP_POLICY

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import NotifierSettings, SupportSettings
from notifier.mime import OutgoingMail, build_mime, new_message_id
from notifier.transports import PermanentFailure, TransientFailure, Transport
from tickets.clock import Clock
from tickets.models import BouncingRecipient, Message, OutboxItem
from tickets.store import Store

log = logging.getLogger("hypercare.outbox")

CLAIM_SECONDS = 300


@dataclass
class FlushReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    suppressed: int = 0
    errors: list[str] = field(default_factory=list)


def enqueue(
    session: Session,
    mail: OutgoingMail,
    *,
    key: str,
    support: SupportSettings,
    now: datetime,
    ticket_id: int | None = None,
) -> OutboxItem:
    """Queue *mail* once under *key*; a second call with the same key returns the first row.

    The outgoing message is also recorded as a ``Message`` of the ticket, so replies
    that name its Message-ID thread back into the ticket.
    """
    existing = session.scalar(select(OutboxItem).where(OutboxItem.idempotency_key == key))
    if existing is not None:
        return existing
    message_id = new_message_id(mail.kind, support.domain)
    mime = build_mime(mail, sender_address=support.address, sender_name=support.name,
                      message_id=message_id, date=now)
    data = mime.as_bytes(policy=SMTP_POLICY)  # CRLF line ends: smtplib sends bytes as they are
    item = OutboxItem(
        idempotency_key=key, kind=mail.kind, ticket_id=ticket_id, sender=support.address,
        recipients=list(mail.to), suppressed=[], message_id=message_id, subject=str(mime["Subject"]),
        mime=data, status="pending", attempts=0, created_at=now, next_attempt_at=now,
    )
    session.add(item)
    if ticket_id is not None:
        session.add(Message(
            ticket_id=ticket_id, message_id=message_id, content_hash="", direction="out",
            disposition="sent", from_addr=support.address, from_name=support.name,
            to_addrs=list(mail.to), subject=str(mime["Subject"]), body=mail.text, body_full=mail.text,
            in_reply_to=mail.in_reply_to, references=list(mail.references), received_at=now,
            source=f"outbox:{mail.kind}", raw=data,
        ))
    session.flush()
    return item


class Outbox:
    """Claims due rows and drives them through a transport."""

    def __init__(self, store: Store, clock: Clock, settings: NotifierSettings,
                 rng: random.Random | None = None) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.rng = rng or random.Random()

    def claim_due(self, limit: int) -> list[OutboxItem]:
        """Mark up to *limit* due rows as ``sending`` (ours for CLAIM_SECONDS) and return them."""
        now = self.clock.now()
        is_due = ((OutboxItem.status == "pending") & (OutboxItem.next_attempt_at <= now)) | (
            (OutboxItem.status == "sending") & (OutboxItem.claimed_until < now))
        with self.store.read() as session:
            # A cheap look first: the daemon asks every second, and must not take the write lock for nothing.
            if session.scalar(select(OutboxItem.id).where(is_due).limit(1)) is None:
                return []
        with self.store.session() as session:
            due = select(OutboxItem).where(is_due).order_by(OutboxItem.next_attempt_at, OutboxItem.id).limit(limit)
            if self.store.dialect == "postgresql":
                due = due.with_for_update(skip_locked=True)
            items = list(session.scalars(due))
            for item in items:
                item.status = "sending"
                item.claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
                _ = item.mime  # load the deferred bytes while the session is open
            return items

    def flush(self, transport: Transport, max_items: int | None = None) -> FlushReport:
        """Send everything due now over one transport connection; return what happened."""
        report = FlushReport()
        remaining = max_items
        opened = False
        try:
            while remaining is None or remaining > 0:
                batch = self.claim_due(self.settings.batch_size if remaining is None
                                       else min(remaining, self.settings.batch_size))
                if not batch:
                    break
                if remaining is not None:
                    remaining -= len(batch)
                if not opened:
                    try:
                        transport.open()
                        opened = True
                    except TransientFailure as exc:
                        for item in batch:
                            self._record_failure(item, str(exc), permanent=False, report=report)
                        break
                    except PermanentFailure as exc:
                        for item in batch:
                            self._record_failure(item, str(exc), permanent=True, report=report)
                        break
                for item in batch:
                    self._send_one(transport, item, report)
        finally:
            if opened:
                transport.close()
        return report

    def retry(self, item_id: int) -> bool:
        """Put a dead or waiting item back in the queue now (``outbox retry ID``)."""
        with self.store.session() as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status == "sent":
                return False
            item.status = "pending"
            item.next_attempt_at = self.clock.now()
            item.claimed_until = None
            return True

    def _send_one(self, transport: Transport, item: OutboxItem, report: FlushReport) -> None:
        recipients, suppressed = self._deliverable(item)
        if not recipients:
            self._finish(item, status="suppressed", suppressed=suppressed)
            report.suppressed += 1
            log.info(f"{item.message_id} outbox item {item.id} suppressed: all recipients bouncing")
            return
        try:
            transport.send(item.sender, recipients, item.mime)
        except PermanentFailure as exc:
            self._record_failure(item, str(exc), permanent=True, report=report)
            return
        except TransientFailure as exc:
            self._record_failure(item, str(exc), permanent=False, report=report)
            return
        self._finish(item, status="sent", suppressed=suppressed)
        report.sent += 1
        log.info(f"{item.message_id} sent kind={item.kind} to={','.join(recipients)}")

    def _deliverable(self, item: OutboxItem) -> tuple[list[str], list[str]]:
        with self.store.session() as session:
            bouncing = set(session.scalars(
                select(BouncingRecipient.email).where(
                    func.lower(BouncingRecipient.email).in_([r.lower() for r in item.recipients]))
            ))
        keep = [r for r in item.recipients if r.lower() not in bouncing]
        return keep, [r for r in item.recipients if r.lower() in bouncing]

    def _finish(self, item: OutboxItem, *, status: str, suppressed: list[str]) -> None:
        now = self.clock.now()
        with self.store.session() as session:
            row = session.get(OutboxItem, item.id)
            assert row is not None
            row.status = status
            row.attempts += 1
            row.sent_at = now if status == "sent" else None
            row.claimed_until = None
            row.suppressed = suppressed

    def _record_failure(self, item: OutboxItem, error: str, *, permanent: bool, report: FlushReport) -> None:
        now = self.clock.now()
        with self.store.session() as session:
            row = session.get(OutboxItem, item.id)
            assert row is not None
            row.attempts += 1
            row.last_error = error[:2000]
            row.claimed_until = None
            if permanent or row.attempts >= self.settings.max_attempts:
                row.status = "dead"
                report.dead += 1
                log.error(f"{row.message_id} outbox item {row.id} dead after {row.attempts} attempts: {error}")
            else:
                row.status = "pending"
                row.next_attempt_at = now + timedelta(seconds=self.backoff(row.attempts))
                report.retried += 1
                log.warning(f"{row.message_id} outbox item {row.id} retry {row.attempts}: {error}")
        report.errors.append(error)

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with full jitter, capped: spreads retries when a relay comes back."""
        ceiling = min(self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2 ** (attempts - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
