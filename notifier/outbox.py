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

import dataclasses
import hashlib
import logging
import os
import random
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, undefer
from sqlalchemy.orm.attributes import set_committed_value

from config import NotifierSettings, SupportSettings
from notifier.mime import BadAddress, OutgoingMail, clean_address, new_message_id
from notifier.plain_mime import smtp_bytes
from notifier.sent_marks import SentMarks
from notifier.transports import PermanentFailure, Refused, RelayUnavailable, TransientFailure, Transport
from tickets.clock import Clock
from tickets.models import BouncingRecipient, Message, OutboxItem, RelayState, Ticket
from tickets.store import Store, ensure_row, rows_in

log = logging.getLogger("hypercare.outbox")

CLAIM_SECONDS = 300
_OUTBOX = OutboxItem.__table__
# Each accepted message is recorded at once, in its own statement, committed: a crash resends at most the
# one message in flight (grouping 20 per commit resent up to 19, issue 11); ``notifier.sent_marks`` writes
# these marks while the next message is on the wire.  The mark writes only ``sent_at`` (no indexed column,
# so PostgreSQL can update the row in place); a row marked so is never claimed again, and ``_FOLD_SENT``
# turns the batch's marked rows into ``sent`` in one statement.  Writing status per message cost 4 index
# entries and the row's bytes each time: 5x a bare smtplib loop.
_MARK_SENT = update(_OUTBOX).where(_OUTBOX.c.id == bindparam("item_id")).values(sent_at=bindparam("mark_at"))
_FOLD_SENT = (update(_OUTBOX).where(_OUTBOX.c.status == "sending", _OUTBOX.c.sent_at.is_not(None))
              .values(attempts=_OUTBOX.c.attempts + 1, claimed_until=None, claimed_by=None, status="sent"))
_QUEUED = select(_OUTBOX.c.id).where(_OUTBOX.c.idempotency_key == bindparam("key"))
_QUEUED_KEYS = (select(_OUTBOX.c.idempotency_key)  # built once (``rows_in``): looked up per SMTP group
                .where(_OUTBOX.c.idempotency_key.in_(bindparam("values", expanding=True))))
_MARK = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("item_id"))
         .values(attempts=_OUTBOX.c.attempts + 1, claimed_until=None, claimed_by=None))


@dataclass
class FlushReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    suppressed: int = 0
    relay_down: bool = False
    stopped: bool = False  # asked to stop: the unsent claimed rows were put back
    errors: list[str] = field(default_factory=list)


def short_key(message_id: str) -> str:
    """A Message-ID short enough for an outbox idempotency key (200 characters); long ones are hashed."""
    return message_id if len(message_id) <= 120 else hashlib.sha256(message_id.encode()).hexdigest()[:40]


def enqueue(
    session: Session,
    mail: OutgoingMail,
    *,
    key: str,
    support: SupportSettings,
    now: datetime,
    ticket_id: int | None = None,
    ticket: Ticket | None = None,
    flush: bool = True,
) -> OutboxItem:
    """Queue *mail* once under *key*; a second call with the same key returns the first row.

    The outgoing message is also recorded as a ``Message`` of the ticket, so replies
    that name its Message-ID thread back into the ticket.  A caller that opens the ticket
    in the same unit passes the *ticket* object and ``flush=False``: one flush stores all.
    """
    existing = _queued(session, key)
    if existing is not None:
        return existing
    item_values, message_values = outgoing_rows(mail, key=key, support=support, now=now, ticket_id=ticket_id)
    item = OutboxItem(**item_values)
    if ticket is not None:
        item.ticket = ticket
    session.add(item)
    if ticket_id is not None or ticket is not None:
        outbound = Message(**message_values)
        if ticket is not None:
            outbound.ticket = ticket
        session.add(outbound)
    if flush:
        session.flush()
    return item


def outgoing_rows(mail: OutgoingMail, *, key: str, support: SupportSettings, now: datetime,
                  ticket_id: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``outbox`` row and the outbound ``messages`` row of *mail*, as plain values.

    Why plain values: ``enqueue`` makes ORM objects of them, the batched write path
    (``notifier.acknowledgement``, ``intake.batch_store``) inserts thousands with one
    statement.  The bytes are stored once, in the outbox row: the ``messages`` row records
    the mail for threading and the ticket view (same Message-ID), its ``raw`` stays empty.
    """
    good, bad = _split_addresses(mail.to)
    mail = dataclasses.replace(mail, to=good)
    message_id = new_message_id(mail.kind, support.domain)
    data, subject = smtp_bytes(mail, sender_address=support.address, sender_name=support.name,
                               message_id=message_id, date=now)
    if bad:
        log.warning("%s invalid recipient(s) left out: %r", message_id, bad)
    item = {
        "idempotency_key": key, "kind": mail.kind, "ticket_id": ticket_id, "sender": support.address,
        "recipients": good, "suppressed": [], "message_id": message_id, "subject": subject, "mime": data,
        "status": "pending" if good else "dead", "attempts": 0, "created_at": now, "next_attempt_at": now,
        "last_error": f"invalid recipient address(es) left out: {', '.join(repr(b) for b in bad)}"[:2000]
        if bad else None,
    }
    outbound = {
        "ticket_id": ticket_id, "message_id": message_id, "content_hash": "", "direction": "out",
        "disposition": "sent", "from_addr": support.address, "from_name": support.name,
        "to_addrs": list(mail.to), "cc_addrs": [], "subject": subject, "body": mail.text, "body_full": mail.text,
        "in_reply_to": mail.in_reply_to, "references": list(mail.references), "received_at": now,
        "source": f"outbox:{mail.kind}", "notes": [], "raw": b"", "rule": None,
    }
    return item, outbound


def queued_keys(session: Session, keys: Sequence[str]) -> set[str]:
    """Which of *keys* are already queued: one ``IN`` query per 500 (the batched write path)."""
    return {row[0] for row in rows_in(session, _QUEUED_KEYS, keys)}


def _queued(session: Session, key: str) -> OutboxItem | None:
    """The row already queued under *key*, in this session (not flushed yet) or in the database.

    Why without autoflush: the caller's pending rows (a new ticket's participants and events)
    cannot hold an outbox key, and flushing them here cost a second flush per new ticket;
    they go out with this call's own flush.
    """
    for obj in session.new:
        if isinstance(obj, OutboxItem) and obj.idempotency_key == key:
            return obj
    with session.no_autoflush:
        item_id = session.execute(_QUEUED, {"key": key}).scalar()  # a Core SELECT: no ORM step
    return None if item_id is None else session.get(OutboxItem, item_id)


def _maildir_name(item: OutboxItem) -> str:
    """The file name of *item* in a Maildir: the same on every attempt (a resend after a crash finds it),
    unique per row and per database (the row id and its Message-ID)."""
    digest = hashlib.sha256(item.message_id.encode(errors="replace")).hexdigest()[:16]
    return f"{int(item.created_at.timestamp())}.hc{item.id}x{digest}"


def _split_addresses(addresses: Sequence[str]) -> tuple[list[str], list[str]]:
    """Plain addresses go out; anything that could inject a header or an SMTP command is left out."""
    good, bad = [], []
    for address in addresses:
        try:
            good.append(clean_address(address))
        except BadAddress:
            bad.append(address)
    return good, bad


class Outbox:
    """Claims due rows and drives them through a transport.

    A claim names its worker (``claimed_by``) and is renewed while the worker is still working
    through its batch, so a second instance never takes a row the first is about to send; a slow
    relay once let a 300 s claim expire mid-batch and 16 of 130 acknowledgements went out twice.
    """

    def __init__(self, store: Store, clock: Clock, settings: NotifierSettings,
                 rng: random.Random | None = None,
                 sign: Callable[[bytes, Sequence[str], datetime], bytes] | None = None, *, relay: str = "relay",
                 claim_seconds: float = CLAIM_SECONDS, worker: str | None = None,
                 protected: frozenset[str] = frozenset()) -> None:
        self.store = store
        # Signs the stored mail's reply-address placeholder for its recipient at send time
        # (tickets.tokens.ReplyTokens.sign_mail): the database never holds the credential.
        self.sign = sign
        self.clock = clock
        self.settings = settings
        self.protected = protected  # team and stakeholders: never suppressed (tickets.bouncing)
        self.rng = rng or random.Random()
        self.relay = relay  # the RelayState key (tickets.health.relay_key)
        self.claim_seconds = claim_seconds
        self.worker = (worker or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}")[:120]
        # Set (from a signal handler or another thread) to stop between two messages.
        self.stopping = threading.Event()
        self._marks: SentMarks | None = None  # during a batch: each accepted row recorded as sent, at once
        self._resent: set[int] = set()  # rows of the last claim whose earlier claim ran out (a crashed worker's)

    def claim_due(self, limit: int, due_by: datetime | None = None) -> list[OutboxItem]:
        """Mark up to *limit* due rows as ``sending`` (ours for claim_seconds) and return them.

        *due_by*: only rows due by then (``flush``: when it began), not those queued meanwhile.
        """
        now = self.clock.now()
        is_due = ((OutboxItem.status == "pending") & (OutboxItem.next_attempt_at <= (due_by or now))) | (
            (OutboxItem.status == "sending") & (OutboxItem.claimed_until < now) & OutboxItem.sent_at.is_(None))
        unfolded = (OutboxItem.status == "sending") & OutboxItem.sent_at.is_not(None)  # a crashed worker's sends
        with self.store.read() as session:
            # A cheap look first: the daemon asks every second, and must not take the write lock for nothing.
            if session.scalar(select(OutboxItem.id).where(is_due | unfolded).limit(1)) is None:
                return []
        with self.store.session() as session:
            session.execute(_FOLD_SENT)  # what a crashed worker sent but did not fold
            due = (select(OutboxItem).where(is_due).order_by(OutboxItem.next_attempt_at, OutboxItem.id)
                   .limit(limit).options(undefer(OutboxItem.mime)))  # the bytes in the same query, not one per row
            if self.store.dialect == "postgresql":
                due = due.with_for_update(skip_locked=True)
            items = list(session.scalars(due))
            if not items:
                return []
            self._resent = {item.id for item in items if item.status == "sending"}
            # One UPDATE for the batch, not the ORM's one per row (a round trip's worth of work each).
            claim = {"status": "sending", "claimed_until": now + timedelta(seconds=self.claim_seconds),
                     "claimed_by": self.worker}
            session.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_([item.id for item in items])).values(**claim))
            for item in items:
                for column, value in claim.items():
                    set_committed_value(item, column, value)
            return items

    def flush(self, transport: Transport, max_items: int | None = None) -> FlushReport:
        """Send everything due now over one transport connection; return what happened.

        The relay being unavailable stops the flush at once: the claimed rows are put back
        with backoff (one connection attempt per flush, not one per message), and no row
        ever goes ``dead`` because the relay was down, only because of its own answer.
        ``stopping`` set: the flush ends between two messages and puts its unsent rows back.
        """
        report = FlushReport()
        remaining = max_items
        opened = False
        # What is due now, not what arrives meanwhile: under a steady stream of new tickets the flush
        # once went on in batches of a few mails each, every batch paying its claim and its record;
        # the next beat (a second later in ``run``) takes those together.
        began = self.clock.now()
        try:
            while (remaining is None or remaining > 0) and not self.stopping.is_set():
                batch = self.claim_due(self.settings.batch_size if remaining is None
                                       else min(remaining, self.settings.batch_size), due_by=began)
                if not batch:
                    break
                if remaining is not None:
                    remaining -= len(batch)
                if not opened:
                    try:
                        transport.open()
                        opened = True
                    except (TransientFailure, PermanentFailure) as exc:
                        self._relay_down(batch, str(exc), report)
                        break
                if not self._work_through(transport, batch, report):
                    break
            if self.stopping.is_set():
                report.stopped = True
        finally:
            if opened:
                transport.close()
        return report

    def _work_through(self, transport: Transport, batch: list[OutboxItem], report: FlushReport) -> bool:
        """Send a claimed batch one message at a time, renewing the claim; False: stop the flush."""
        bouncing = self._bouncing(batch)
        deliver = getattr(transport, "deliver", None)
        if deliver is not None:
            return self._deliver_batch(deliver, batch, bouncing, report)
        try:
            with SentMarks(self.store) as self._marks:
                return self._send_batch(transport, list(batch), bouncing, report)
        finally:
            self._marks = None
            with self.store.engine.begin() as connection:
                connection.execute(_FOLD_SENT)

    def _deliver_batch(self, deliver: Callable[..., list[Exception | None]], batch: list[OutboxItem],
                       bouncing: set[str], report: FlushReport) -> bool:
        """A local transport (the Maildir) takes the whole claimed batch at once; False: stop the flush.

        Why: one fsync per mail and one "sent" record per mail (each taking SQLite's write lock between
        two intake commits) made the outbox of ``run`` cost ~11 % of the daemon at SMTP intake rates.
        Here the transport writes the batch with one wait for the disk, and one statement records it.
        A crash between the two cannot send twice: each row's file name is fixed (``_maildir_name``),
        and the transport skips a name already delivered.
        """
        if self.stopping.is_set():
            self._release(batch)
            return False
        now = self.clock.now()
        todo: list[tuple[OutboxItem, list[str]]] = []
        mails: list[tuple[str, bytes]] = []
        for item in batch:
            recipients, suppressed = self._split_bouncing(item, bouncing, report)
            if not recipients:
                continue
            todo.append((item, suppressed))
            data = item.mime if self.sign is None else self.sign(item.mime, recipients, now)
            mails.append((_maildir_name(item), data))
        if not todo:
            return True
        try:
            outcomes = deliver(mails, maybe_delivered=any(item.id in self._resent for item, _s in todo))
        except RelayUnavailable as exc:
            report.errors.append(str(exc))
            self._relay_down([item for item, _s in todo], str(exc), report)
            return False
        sent: list[int] = []  # rows recorded below; a row with suppressed recipients is finished at once
        delivered = 0
        for (item, suppressed), outcome in zip(todo, outcomes, strict=True):
            if outcome is not None:
                kind = "permanent" if isinstance(outcome, PermanentFailure) else "transient"
                self._record_failure(item, str(outcome), kind=kind, report=report)
                continue
            if suppressed:
                self._finish(item, status="sent", suppressed=suppressed)
            else:
                sent.append(item.id)
            delivered += 1
            log.info("%s sent kind=%s to=%s", item.message_id, item.kind,
                     ",".join(r for r in item.recipients if r not in suppressed))
        report.sent += delivered
        if delivered:
            with self.store.session() as session:  # the batch's record and the relay's health: one commit
                for start in range(0, len(sent), 500):
                    session.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_(sent[start:start + 500])).values(
                        status="sent", sent_at=now, attempts=_OUTBOX.c.attempts + 1, claimed_until=None,
                        claimed_by=None))
                state = self._relay_state(session)
                state.last_success_at, state.failing_since = now, None
        return True

    def _send_batch(self, transport: Transport, todo: list[OutboxItem], bouncing: set[str],
                    report: FlushReport) -> bool:
        renew_at = self._renew_deadline()
        reached = False
        while todo:
            if self.stopping.is_set():
                self._release(todo)
                return False
            if self.clock.now() >= renew_at:
                todo, renew_at = self._renew(todo), self._renew_deadline()
                continue
            item = todo.pop(0)
            if not self._send_one(transport, item, bouncing, report):
                self._relay_down([item, *todo], report.errors[-1], report)
                return False
            if not reached:
                reached = True
                self._relay_seen()
        return True

    def _renew_deadline(self) -> datetime:
        return self.clock.now() + timedelta(seconds=self.claim_seconds / 3)

    def _renew(self, items: list[OutboxItem]) -> list[OutboxItem]:
        """Extend our claim on *items*; keep only the rows still ours (a lost claim is never sent)."""
        self._settle()
        until = self.clock.now() + timedelta(seconds=self.claim_seconds)
        with self.store.engine.begin() as connection:
            mine = set(connection.execute(
                update(_OUTBOX).where(_OUTBOX.c.id.in_([i.id for i in items]), _OUTBOX.c.status == "sending",
                                      _OUTBOX.c.claimed_by == self.worker)
                .values(claimed_until=until).returning(_OUTBOX.c.id)).scalars())
        lost = [i.id for i in items if i.id not in mine]
        if lost:
            log.warning("outbox claim lost on item(s) %s: not sending them", lost)
        return [i for i in items if i.id in mine]

    def _release(self, items: list[OutboxItem]) -> None:
        """Put unsent claimed rows back, due now, no attempt counted: a stop is nobody's failure."""
        if not items:
            return
        self._settle()
        with self.store.engine.begin() as connection:
            connection.execute(
                update(_OUTBOX).where(_OUTBOX.c.id.in_([i.id for i in items]), _OUTBOX.c.claimed_by == self.worker,
                                      _OUTBOX.c.status == "sending")
                .values(status="pending", claimed_until=None, claimed_by=None, next_attempt_at=self.clock.now()))
        log.info("outbox stopping: %s claimed item(s) put back", len(items))

    def retry(self, item_id: int) -> bool:
        """Put a dead or waiting item back in the queue now (``outbox retry ID``)."""
        with self.store.session() as session:
            item = session.get(OutboxItem, item_id)
            if item is None or item.status == "sent" or item.sent_at is not None:
                return False
            item.status = "pending"
            item.next_attempt_at = self.clock.now()
            item.claimed_until = None
            item.claimed_by = None
            return True

    def _split_bouncing(self, item: OutboxItem, bouncing: set[str],
                        report: FlushReport) -> tuple[list[str], list[str]]:
        """(recipients to send to, bouncing ones left out); a row with nobody left is finished as suppressed."""
        recipients = [r for r in item.recipients if r.lower() not in bouncing]
        suppressed = [r for r in item.recipients if r.lower() in bouncing]
        if not recipients:
            self._finish(item, status="suppressed", suppressed=suppressed)
            report.suppressed += 1
            log.info("%s outbox item %s suppressed: all recipients bouncing", item.message_id, item.id)
        return recipients, suppressed

    def _send_one(self, transport: Transport, item: OutboxItem, bouncing: set[str], report: FlushReport) -> bool:
        """Send one claimed row and record the outcome; False when the relay became unavailable."""
        recipients, suppressed = self._split_bouncing(item, bouncing, report)
        if not recipients:
            return True
        data = item.mime if self.sign is None else self.sign(item.mime, recipients, self.clock.now())
        try:
            # The previous mail's record is committed before this one's DATA (at most one unrecorded per crash).
            refused = transport.send(item.sender, recipients, data, before_data=self._settle)
        except RelayUnavailable as exc:
            report.errors.append(str(exc))  # the caller puts this row and the rest back
            return False
        except PermanentFailure as exc:
            self._record_failure(item, str(exc), kind="permanent", report=report)
            return True
        except TransientFailure as exc:
            self._record_failure(item, str(exc), kind="transient", report=report)
            return True
        if refused or suppressed:
            self._finish(item, status="sent", suppressed=suppressed, refused=refused)
        else:
            self._mark_sent(item)
        report.sent += 1
        log.info("%s sent kind=%s to=%s", item.message_id, item.kind,
                 ",".join(r for r in recipients if r not in refused))
        return True

    def _settle(self) -> None:
        """Wait for the batch's outstanding "sent" mark: before the next DATA, and before any other write."""
        if self._marks is not None:
            self._marks.settle()

    def _mark_sent(self, item: OutboxItem) -> None:
        """Record one accepted message at once (a crash resends at most the message in flight)."""
        if self._marks is not None:
            self._marks.mark(item.id, self.clock.now())  # committed while the next message is on the wire
            return
        with self.store.engine.begin() as connection:
            connection.execute(_MARK_SENT, {"item_id": item.id, "mark_at": self.clock.now()})

    def _bouncing(self, batch: list[OutboxItem]) -> set[str]:
        """Recipients of *batch* whose mail bounced (intake guards): one query for the whole batch."""
        addresses = sorted({r.lower() for item in batch for r in item.recipients} - self.protected)
        with self.store.read() as session:
            return {e.lower() for e in session.scalars(
                select(BouncingRecipient.email).where(func.lower(BouncingRecipient.email).in_(addresses)))}

    def _finish(self, item: OutboxItem, *, status: str, suppressed: list[str], refused: Refused | None = None) -> None:
        """Record the outcome in its own short transaction: a crash resends at most the message in flight."""
        self._settle()
        now = self.clock.now()
        if refused:
            with self.store.session() as session:
                note = self._requeue_refused(session, item, refused, now)
        values = {"status": status, "sent_at": now if status == "sent" else None, "suppressed": suppressed}
        if refused:
            values["last_error"] = note
        # One Core UPDATE on a bare connection: this runs once per message sent, the ORM would double its cost.
        with self.store.engine.begin() as connection:
            connection.execute(_MARK.values(**values), {"item_id": item.id})

    def _requeue_refused(self, session: Session, row: OutboxItem, refused: Refused, now: datetime) -> str:
        """Sent to some: the 4xx-refused recipients get a row of their own (same bytes, same Message-ID)."""
        later = sorted(r for r, (code, _) in refused.items() if code < 500)
        note = "; ".join(f"{r}: {code} {answer}" for r, (code, answer) in sorted(refused.items()))
        if later:
            digest = hashlib.sha256(",".join(later).encode()).hexdigest()[:12]
            follow = OutboxItem(
                idempotency_key=f"{row.idempotency_key[:150]}#rcpt:{digest}", kind=row.kind, ticket_id=row.ticket_id,
                sender=row.sender, recipients=later, suppressed=[], message_id=row.message_id, subject=row.subject,
                mime=row.mime, status="pending", attempts=0, created_at=now,
                next_attempt_at=now + timedelta(seconds=self.backoff(1)), last_error=note[:2000],
            )
            session.add(follow)
            session.flush()
            note += f" (retried as outbox item {follow.id})"
        log.warning("%s outbox item %s sent; relay refused %s", row.message_id, row.id, note)
        return f"sent; refused {note}"[:2000]

    def _record_failure(self, item: OutboxItem, error: str, *, kind: str, report: FlushReport) -> None:
        """kind: permanent (5xx: dead now) | transient (4xx, drop, timeout: dead after max_attempts).

        The relay being unavailable is not this: see ``_relay_down``.
        """
        self._settle()
        now = self.clock.now()
        with self.store.session() as session:
            row = session.get(OutboxItem, item.id)
            assert row is not None
            row.attempts += 1
            row.claimed_until = None
            row.claimed_by = None
            if kind == "permanent" or row.attempts >= self.settings.max_attempts:
                row.status = "dead"
                row.last_error = (error if kind == "permanent"
                                  else f"gave up after {row.attempts} attempts: {error}")[:2000]
                report.dead += 1
                log.error("%s outbox item %s dead after %s attempt(s): %s", row.message_id, row.id, row.attempts, error)
            else:
                row.status = "pending"
                row.last_error = error[:2000]
                row.next_attempt_at = now + timedelta(seconds=self.backoff(row.attempts))
                report.retried += 1
                log.warning("%s outbox item %s retry %s at %s: %s", row.message_id, row.id, row.attempts,
                            row.next_attempt_at.isoformat(), error)
        report.errors.append(error)

    def _relay_down(self, items: list[OutboxItem], error: str, report: FlushReport) -> None:
        """Record the outage and put claimed rows back with backoff: the relay, not they, failed.

        No attempt is counted (a one-hour outage once used up max_attempts, and the first ordinary
        451 afterwards killed the mail); the backoff grows with the outage instead.
        """
        self._settle()
        now = self.clock.now()
        with self.store.session() as session:
            state = self._relay_state(session)
            state.last_error, state.last_error_at = error[:2000], now
            state.failing_since = state.failing_since or now
            outage = (now - state.failing_since).total_seconds()
            ids = [i.id for i in items]
            for row in session.scalars(select(OutboxItem).where(OutboxItem.id.in_(ids))) if ids else ():
                row.status = "pending"
                row.claimed_until = None
                row.claimed_by = None
                row.last_error = f"relay unavailable (not counted as an attempt): {error}"[:2000]
                row.next_attempt_at = now + timedelta(seconds=self.relay_backoff(outage))
        report.retried += len(items)
        report.relay_down = True
        report.errors.append(error)
        log.warning("relay unavailable, %s outbox item(s) back off: %s", len(items), error)

    def _relay_seen(self) -> None:
        """The relay accepted a message: record it reachable (once per batch, for health)."""
        with self.store.session() as session:
            state = self._relay_state(session)
            state.last_success_at, state.failing_since = self.clock.now(), None

    def _relay_state(self, session: Session) -> RelayState:
        """Our relay's health row, created race-free (two instances may meet it missing at once)."""
        ensure_row(session, RelayState.__table__, relay=self.relay)
        state = session.get(RelayState, self.relay, with_for_update=self.store.dialect == "postgresql")
        assert state is not None
        return state

    def backoff(self, attempts: int) -> float:
        """Exponential backoff with full jitter, capped: spreads retries when a relay comes back."""
        ceiling = min(self.settings.retry_max_seconds, self.settings.retry_base_seconds * 2 ** (attempts - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def relay_backoff(self, outage_seconds: float) -> float:
        """As long again as the outage has lasted (base..max, jittered): doubling without counting attempts."""
        ceiling = min(self.settings.retry_max_seconds, max(self.settings.retry_base_seconds, outage_seconds))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
