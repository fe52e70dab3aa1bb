"""The one ingest pipeline every receiver hands raw mail to.

Stages, in order (DESIGN "How a message flows"): parse -> guard -> deduplicate ->
thread -> classify -> store and enqueue (guards before dedup, so our own mail coming
back is reported as ignored by its rule, not as a duplicate of what we sent).  Each message is atomic: its own
SAVEPOINT inside a batch transaction that commits as a group, so one bad message
never takes its neighbours down and throughput is not bound by one fsync per mail.
Outcomes are caught in one place (``_ingest_one``): an unparseable or crashing
message is shunted to quarantine with the reason, never dropped; a database that
cannot be reached is ``IngestUnavailable`` so the sender retries (SMTP 451, exit 75).
"""

from __future__ import annotations

import errno
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Config, IntakeSettings, SupportSettings
from core.email_headers import CachingPolicy
from core.errors import HypercareError, TryLater
from core.untrusted_text import storable_text
from intake.batch_store import BatchStore
from intake.dedup import KnownMessages, find_duplicate, judge_conflict
from intake.flood import GROUPED, FloodControl, FloodHook, FloodVerdict, must_page_in_flood
from intake.guards.rules import GuardContext, GuardHit, first_hit
from intake.opening import OpenedTicket, TicketOpener
from intake.parse.message import ParsedMessage, UnparseableMessage
from intake.parse.parser import parse_message
from intake.rows import attachment_values, message_values
from intake.storable import make_storable
from intake.thread import DECISION_RECORDED, ReplyHandling, exit_report_replied, find_thread, replied_untracked_mail
from tickets.attachments import AttachmentStore
from tickets.clock import Clock
from tickets.lifecycle import record_event
from tickets.models import Attachment, BouncingRecipient, Message, OutboxItem, QuarantineItem, Ticket
from tickets.our_mail import is_our_address
from tickets.store import Store, database_unreachable, rows_in, savepoint
from tickets.tokens import ReplyTokens

log = logging.getLogger("hypercare.intake")

_TICKETS = Ticket.__table__
# Built once (``tickets.store.rows_in``): the flood count is looked up for every SMTP group.
_OPENED_BY = (select(_TICKETS.c.reporter, func.count(_TICKETS.c.id))
              .where(_TICKETS.c.reporter.in_(bindparam("values", expanding=True)),
                     _TICKETS.c.created_at > bindparam("since"))
              .group_by(_TICKETS.c.reporter))


class IngestUnavailable(TryLater):
    """The message could not be stored now but may be retried (database down or locked)."""


class Shunted(HypercareError):
    """A stage decided this mail goes to quarantine with the reason (never acknowledged, kept for replay)."""


def _reason(exc: BaseException) -> str:
    """One storable line for quarantine: the driver's message, never the statement and its parameters."""
    origin = getattr(exc, "orig", None) or exc
    first = (str(origin).strip().splitlines() or [""])[0]
    return storable_text(f"{type(origin).__name__}: {first}", 500)


@dataclass(frozen=True)
class RawMail:
    raw: bytes
    source: str = "ingest"  # smtp | imap | ingest | replay
    envelope_recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestResult:
    action: str  # created | threaded | duplicate | ignored | quarantined
    message_id: str = ""
    key: str = ""  # the ticket key, when there is one
    detail: str = ""  # guard rule, quarantine reason, thread path

    def line(self) -> str:
        parts = [self.key or "-", self.action]
        if self.detail:
            parts.append(self.detail)
        if self.message_id:
            parts.append(f"<{self.message_id}>")
        return " ".join(parts)


def _created(opened: OpenedTicket) -> IngestResult:
    """The result of a ticket the batched write path stored (same words as the per-message path)."""
    return IngestResult("created", opened.parsed.message_id, opened.ticket["key"],
                        f"{opened.ticket['severity']} {opened.ticket['role']}")


@dataclass
class _BatchMemo:
    """What one batch already knows: which mails may be duplicates, and each sender's recent tickets.

    Why: at IMAP drain rates the per-message dedup and flood SELECTs were a third of the store
    time.  ``tickets_by_sender`` caches the flood guard's count and is dropped whenever a
    message may have opened a ticket for someone else.  Lives for one batch only.
    """

    dedup: KnownMessages
    tickets_by_sender: dict[str, int] = field(default_factory=dict)

    def opened_last_hour(self, session: Session, sender: str, now: datetime) -> int:
        """Tickets *sender* opened in the last hour (the flood stage's input), cached for the batch."""
        sender = sender.lower()
        if sender not in self.tickets_by_sender:
            self.tickets_by_sender[sender] = session.scalar(
                select(func.count(Ticket.id)).where(Ticket.reporter == sender,
                                                    Ticket.created_at > now - timedelta(hours=1))) or 0
        return self.tickets_by_sender[sender]

    def seen(self, parsed: ParsedMessage, action: str) -> None:
        self.dedup.add(parsed)
        if action == "created":
            # Exactly one ticket opened, reported by this sender (TicketOpener takes the From address):
            # count it rather than forget every count, which cost one query per new ticket.
            sender = parsed.from_addr.lower()
            if sender in self.tickets_by_sender:
                self.tickets_by_sender[sender] += 1
        elif action not in ("ignored", "duplicate"):
            self.tickets_by_sender.clear()


_worker_opener: list[TicketOpener] = []  # set in a parse worker process by ``classify_in_worker``


def classify_in_worker(opener: TicketOpener) -> None:
    """Initializer of a (forked) parse worker: ``parse_mails`` there also computes each verdict.

    Why: facts and verdict depend only on the mail, the rules and the time it arrived, so
    they are pure work that belongs beside the parsing, off the storing process.
    """
    _worker_opener[:] = [opener]


def parse_mails(mails: Sequence[RawMail], limits: IntakeSettings | int,
                received_at: datetime | None = None, *, opener: TicketOpener | None = None,
                guards: bool = False) -> list[ParsedMessage | str]:
    """Parse each mail within [intake] *limits*, or give the quarantine reason; pure, so it may run in a
    worker process.

    In a worker set up by ``classify_in_worker`` and given *received_at*, each mail's verdict
    is computed too (``ParsedMessage.verdict``), and its language when the opener knows how
    (``ParsedMessage.language``, for the acknowledgement); a failing classification is left to the store.
    *guards*: the guards too (``ParsedMessage.guards_clear``), for a worker with time to spare (the SMTP
    intake's; in a ``poll --once`` drain the worker is the slower process, and they stay in the store).
    *opener*: the same in this process (``intake.parse_pool.ParsePool`` parses here what the worker has
    not started when the storing process would otherwise wait for it).
    """
    if isinstance(limits, int):  # an attachment cap alone (bench/store_cpu.py compares with older trees)
        limits = IntakeSettings(max_attachment_bytes=limits)
    in_worker = bool(_worker_opener)
    if in_worker:
        opener = _worker_opener[0]
    out: list[ParsedMessage | str] = []
    for mail in mails:
        try:
            parsed = parse_message(mail.raw, limits=limits)
        except UnparseableMessage as exc:
            out.append(f"unparseable: {exc}")
            continue
        parsed.envelope_recipients = list(mail.envelope_recipients)
        make_storable(parsed)
        if opener is not None and received_at is not None:
            try:
                parsed.verdict = opener.verdict(parsed, received_at)
                if opener.language_of is not None:
                    parsed.language = opener.language_of(parsed.subject, parsed.body)
            except Exception:  # noqa: BLE001 - the storing process classifies again and shunts on failure
                log.debug("<%s> classification in the parse worker failed", parsed.message_id)
            if guards:
                parsed.guards_clear = _no_guard_objects(parsed, opener.config.support)
        if in_worker:
            # The storing process holds these bytes already (``_with_raw`` puts them back in ingest_batch):
            # pickled back, a 47 MB mail crossed the process boundary twice and was held twice there.
            parsed.raw = b""
        out.append(parsed)
    return out


def _classified_fields(parsed: ParsedMessage) -> tuple[object, ...]:
    """What of a mail the classifier reads and ``IngestPipeline._forget_tokens`` may redact."""
    return parsed.subject, parsed.body, parsed.body_full, parsed.to, parsed.cc, parsed.envelope_recipients


class _NeedsDatabase(HypercareError):
    """A guard asked what we sent (a bounce of our mail): only the storing process can answer."""


def _ask_database(message_ids: list[str]) -> set[str]:
    raise _NeedsDatabase


def _no_guard_objects(parsed: ParsedMessage, support: SupportSettings) -> bool:
    """True when no guard objects to *parsed* without asking the database (then the batched write path need
    not run them again); False when one objects, needs the database, or fails: the storing process decides.

    Why here: the guards read only the mail and the support address, except a bounce's look-up of what we
    sent; ~6 % of the SMTP daemon's interpreter time (py-spy ``--gil``) that the parse worker can spend.
    """
    try:
        return first_hit(parsed, GuardContext(support=support, sent_to=_ask_database)) is None
    except Exception:  # noqa: BLE001 - _NeedsDatabase, or a guard that failed: the storing process runs them
        return False


def _with_raw(mail: RawMail, parsed: ParsedMessage | str) -> ParsedMessage | str:
    """*parsed* with the raw bytes a parse worker left out put back (a parsed mail is never empty, so
    b"" means "left out"): this process received them and still holds them."""
    if isinstance(parsed, ParsedMessage) and not parsed.raw:
        parsed.raw = bytes(mail.raw)
    return parsed


class IngestPipeline:
    def __init__(self, config: Config, store: Store, clock: Clock, opener: TicketOpener,
                 replies: ReplyHandling, tokens: ReplyTokens, on_flood: FloodHook | None = None) -> None:
        self.config = config
        self.flood = FloodControl(config.intake.flood_per_hour)
        self.on_flood = on_flood  # wired in app.py: the team's alert, once per flood
        self.store = store
        self.clock = clock
        self.opener = opener
        self.replies = replies
        self.tokens = tokens
        self.attachments = AttachmentStore(config.path(config.intake.attachments_dir))

    def ingest(self, raw: bytes, source: str = "ingest", envelope_recipients: Sequence[str] = (),
               *, shunt: bool = True) -> IngestResult:
        return self.ingest_batch([RawMail(raw, source, tuple(envelope_recipients))], shunt=shunt)[0]

    def ingest_batch(self, mails: Iterable[RawMail], *, shunt: bool = True,
                     prepared: Sequence[ParsedMessage | str] | None = None) -> list[IngestResult]:
        """Ingest several mails in one transaction, each in its own SAVEPOINT; commit once.

        With ``shunt=False`` (quarantine replay) a failing mail is reported but not quarantined again.
        ``prepared``: the mails already parsed by ``parse_mails`` (e.g. in a worker process while the
        previous batch was being stored), one entry per mail in order.
        """
        results: dict[int, IngestResult] = {}
        mails = list(mails)
        # Parse before the transaction: parsing is the slow part and must not hold SQLite's write lock.
        if prepared is None or len(prepared) != len(mails):
            prepared = parse_mails(mails, self.config.intake)
        parsed = [(mail, self._adopt(_with_raw(mail, item))) for mail, item in zip(mails, prepared, strict=True)]
        good = [p for _mail, p in parsed if isinstance(p, ParsedMessage)]
        try:
            with self.store.session() as session:
                memo = _BatchMemo(KnownMessages.of_batch(session, good),
                                  self._tickets_by_sender(session, {p.from_addr.lower() for p in good}))
                now = self.clock.now()
                fast = BatchStore(session, memo, self.opener, self.tokens, self._guard_context(session, now, memo),
                                  self.attachments, now, good, created=_created,
                                  fallback=lambda i: self._ingest_one(session, *parsed[i], memo, shunt),
                                  needs_care=lambda p: self._needs_care(session, p, now, memo))
                for index, (mail, item) in enumerate(parsed):
                    if not fast.take(index, item, mail.source):  # the common case joins the batched write
                        results.update(fast.flush())  # what came before is stored first: mailbox order
                        results[index] = self._ingest_one(session, mail, item, memo, shunt)
                results.update(fast.flush())
        except IngestUnavailable:
            raise  # a stage already said "try later" (e.g. the attachments disk is full)
        except Exception as exc:
            if database_unreachable(exc):
                raise IngestUnavailable(f"database unavailable: {_reason(exc)}") from None
            # Not the database's state but something in this batch (a bug, a value no stage cleaned):
            # never block the batch on it.  Alone, each mail gets its own outcome.
            log.exception("batch of %d failed outside a message's savepoint; ingesting one by one", len(mails))
            return self._one_by_one(parsed, shunt, exc)
        ordered = [results[index] for index in range(len(parsed))]
        for result in ordered:
            log.info(f"<{result.message_id}> {result.action} {result.key} {result.detail}".rstrip())
        return ordered

    def _one_by_one(self, parsed: list[tuple[RawMail, ParsedMessage | str]], shunt: bool,
                    error: Exception) -> list[IngestResult]:
        if len(parsed) > 1:
            return [self.ingest_batch([mail], shunt=shunt, prepared=[item])[0] for mail, item in parsed]
        mail = parsed[0][0]
        try:
            with self.store.session() as session:
                return [self._quarantine(session, mail, f"could not be stored: {_reason(error)}", shunt)]
        except Exception as exc:  # noqa: BLE001 - even the quarantine row failed: the database is the problem
            raise IngestUnavailable(f"database unavailable: {_reason(exc)}") from None

    def _adopt(self, parsed: ParsedMessage | str) -> ParsedMessage | str:
        """Give the parsed tree the memoising policy (done here: a worker's policy is not ours)."""
        if isinstance(parsed, ParsedMessage) and parsed.msg is not None:
            policy = CachingPolicy(CachingPolicy.SHARED_CACHE)
            for part in parsed.msg.walk():
                part.policy = policy
        return parsed

    def _ingest_one(self, session: Session, mail: RawMail, parsed: ParsedMessage | str, memo: _BatchMemo,
                    shunt: bool) -> IngestResult:
        if isinstance(parsed, str):
            return self._quarantine(session, mail, parsed, shunt)
        result = self._ingest_parsed(session, mail, parsed, memo, shunt)
        memo.seen(parsed, result.action)
        return result

    def _ingest_parsed(self, session: Session, mail: RawMail, parsed: ParsedMessage, memo: _BatchMemo,
                       shunt: bool) -> IngestResult:
        attempt = 0
        while True:
            attempt += 1
            try:
                with savepoint(session):
                    return self._store(session, parsed, mail.source, memo)
            except IntegrityError as exc:
                conflict = judge_conflict(session, parsed, exc, attempt)
                if conflict.verdict == "duplicate":
                    return IngestResult("duplicate", parsed.message_id, detail=conflict.reason)
                if conflict.verdict == "quarantine":
                    log.error("<%s> %s; quarantined", parsed.message_id, conflict.reason)
                    return self._quarantine(session, mail, conflict.reason, shunt)
                log.warning("<%s> %s; storing it again", parsed.message_id, conflict.reason)
            except Shunted as exc:
                log.warning("<%s> quarantined: %s", parsed.message_id, exc)
                return self._quarantine(session, mail, str(exc), shunt)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # the attachments disk: retry later, never quarantine
                    raise IngestUnavailable(f"cannot store attachments: {exc.strerror}") from None
                log.exception("<%s> stage failed, quarantined", parsed.message_id)
                return self._quarantine(session, mail, _reason(exc), shunt)
            except Exception as exc:
                if database_unreachable(exc):
                    raise  # the whole batch's transaction is gone (a full disk, a lost connection): 451 / 75
                # A value the database refused, or a stage that crashed: this message's outcome, not the batch's.
                log.exception("<%s> stage failed, quarantined", parsed.message_id)
                return self._quarantine(session, mail, _reason(exc), shunt)

    def _store(self, session: Session, parsed: ParsedMessage, source: str, memo: _BatchMemo) -> IngestResult:
        now = self.clock.now()
        duplicate = find_duplicate(session, parsed) if memo.dedup.may_contain(parsed) else None
        hit = first_hit(parsed, self._guard_context(session, now, memo))
        if hit is not None:
            # Guards first: our own mail coming back is "ignored by own-mail", not a duplicate of what we sent.
            if duplicate is None:
                self._forget_tokens(parsed)
                session.add(self._message_row(parsed, source, now, disposition="ignored", rule=hit.rule))
                self._record_bounces(session, hit, now)
            return IngestResult("ignored", parsed.message_id, detail=f"{hit.rule}: {hit.reason}")
        if duplicate is not None:
            key = duplicate.ticket.key if duplicate.ticket is not None else ""
            return IngestResult("duplicate", parsed.message_id, key)
        # Nobody to answer, or ourselves: acknowledging would mail into the void or start a loop.
        if not parsed.from_addr:
            raise Shunted("no From address: nobody to answer (the identity rule)")
        if is_our_address(self.config.support, parsed.from_addr):
            raise Shunted(f"From is our own address {parsed.from_addr} without our loop mark (the identity rule)")
        # Someone whose address bounced writes to us again: the address works, stop suppressing it.
        session.execute(delete(BouncingRecipient).where(BouncingRecipient.email == parsed.from_addr))

        match = find_thread(session, parsed, self.config, self.tokens, now)
        self._forget_tokens(parsed)
        if match.ticket is not None:
            message = self._message_row(parsed, source, now, disposition="threaded")
            message.ticket = match.ticket
            session.add(message)
            session.flush()
            outcome = self.replies.handle(session, match, message, parsed, now)
            if outcome is not None:
                return IngestResult(outcome.action, parsed.message_id, outcome.ticket.key, outcome.detail)
            return IngestResult("threaded", parsed.message_id, match.ticket.key, f"via {match.via}")

        if match.exit_report is not None:
            sent = exit_report_replied(session, parsed)
        else:
            sent = replied_untracked_mail(session, parsed) if match.linked is None else None
        if sent is not None:
            # A stakeholder answering a digest: a comment for the project managers, not a ticket; a project
            # manager's signed #decision to the exit report records the decision (replies.stakeholder_reply).
            message = self._message_row(parsed, source, now, disposition="comment")
            session.add(message)
            session.flush()
            detail = self.replies.about_our_mail(session, sent, message, parsed, now, exit_token=match.exit_report)
            action = "command" if detail.startswith(DECISION_RECORDED) else "comment"
            return IngestResult(action, parsed.message_id, "", detail)

        flood = self.flood.check(session, parsed, now, memo.opened_last_hour(session, parsed.from_addr, now))
        message = self._message_row(parsed, source, now, disposition="created")
        if flood is not None:
            verdict = self.opener.verdict(parsed, now) if flood.ticket is not None else None
            if verdict is None or not must_page_in_flood(verdict.severity, flood.ticket):
                return self._flooded(session, parsed, source, now, flood)
            # A P1 past the flood limit: its own ticket and page, still no acknowledgement (intake.flood).
            ticket = self.opener.open(session, parsed, message, now, linked=match.linked, verdict=verdict,
                                      flood=flood.detail)
        else:
            ticket = self.opener.open(session, parsed, message, now, linked=match.linked)
        detail = f"{ticket.severity} {ticket.role}"
        if match.linked is not None:
            detail += f" linked to {match.linked.key}"
        return IngestResult("created", parsed.message_id, ticket.key, detail)

    def _needs_care(self, session: Session, parsed: ParsedMessage, now: datetime, memo: _BatchMemo) -> bool:
        """What the batched write path must leave to ``_store``: the identity rule's shunts and floods."""
        return (not parsed.from_addr or is_our_address(self.config.support, parsed.from_addr)
                or memo.opened_last_hour(session, parsed.from_addr, now) >= self.flood.limit)

    def _flooded(self, session: Session, parsed: ParsedMessage, source: str, now: datetime,
                 flood: FloodVerdict) -> IngestResult:
        """Past the per-sender limit: a loop is recorded as ignored; anything else is kept on a ticket."""
        if flood.ticket is None:
            session.add(self._message_row(parsed, source, now, disposition="ignored", rule="loop"))
            return IngestResult("ignored", parsed.message_id, detail=f"loop: {flood.detail}")
        message = self._message_row(parsed, source, now, disposition=GROUPED)
        message.ticket = flood.ticket
        session.add(message)
        record_event(session, flood.ticket, "flood_grouped", now, actor=parsed.from_addr, detail=flood.detail,
                     message=message)
        if flood.first and self.on_flood is not None:
            self.on_flood(session, flood.ticket, message, now)
        return IngestResult("threaded", parsed.message_id, flood.ticket.key, flood.detail)

    def _tickets_by_sender(self, session: Session, senders: set[str]) -> dict[str, int]:
        """Tickets opened per sender in the last hour (the flood guard's input), one query per batch."""
        counts = dict.fromkeys(senders, 0)
        since = self.clock.now() - timedelta(hours=1)
        counts.update({reporter: int(n) for reporter, n in rows_in(session, _OPENED_BY, senders, {"since": since})})
        return counts

    def _guard_context(self, session: Session, now: datetime, memo: _BatchMemo) -> GuardContext:
        def sent_to(message_ids: list[str]) -> set[str]:
            rows = session.scalars(select(OutboxItem.recipients).where(
                func.lower(OutboxItem.message_id).in_(message_ids[:100])))
            return {str(r).lower() for recipients in rows for r in recipients}

        return GuardContext(support=self.config.support, sent_to=sent_to)

    def _record_bounces(self, session: Session, hit: GuardHit, now: datetime) -> None:
        for address in {a.lower() for a in hit.bounced}:
            row = session.get(BouncingRecipient, address)
            if row is None:
                session.add(BouncingRecipient(email=address, first_at=now, last_at=now, count=1,
                                              reason=hit.reason[:500]))
            else:
                row.last_at, row.count, row.reason = now, row.count + 1, hit.reason[:500]

    def _forget_tokens(self, parsed: ParsedMessage) -> None:
        """Redact reply tokens once they did their one job (threading): stored and quoted, a token
        would be a credential for anyone who reads the ticket (``tickets.tokens``)."""
        redact = self.tokens.redact
        read = _classified_fields(parsed)
        parsed.subject, parsed.body, parsed.body_full = redact(parsed.subject), redact(parsed.body), \
            redact(parsed.body_full)
        parsed.to, parsed.cc = [redact(a) for a in parsed.to], [redact(a) for a in parsed.cc]
        parsed.envelope_recipients = [redact(a) for a in parsed.envelope_recipients]
        parsed.raw = self.tokens.redact_bytes(parsed.raw)
        if read != _classified_fields(parsed):
            # The parse worker classified the mail with its tokens, and a rule's evidence quotes what it matched
            # ("recipient support+hc-7.<token>@…"): classified again, from what is kept.
            parsed.verdict = None

    def _message_row(self, parsed: ParsedMessage, source: str, now: datetime, *, disposition: str,
                     rule: str | None = None) -> Message:
        message = Message(**message_values(parsed, source, now, disposition=disposition, rule=rule))
        if disposition != "ignored":
            message.attachments = [Attachment(**attachment_values(self.attachments, a)) for a in parsed.attachments]
        return message

    def _quarantine(self, session: Session, mail: RawMail, reason: str, shunt: bool) -> IngestResult:
        """Hold the mail with the reason; the same bytes failing again are the same item, counted.

        Why keyed by the bytes: a crash between commit and MOVE, or a processed folder the server will
        not create, delivers the same mail on every poll (7 rows for 1 mail in a minute, growing).
        """
        if not shunt:
            return IngestResult("quarantined", "", detail=reason)
        now = self.clock.now()
        # Keyed by the bytes as received; kept for replay, but never with a live reply token (a replayed
        # team reply acts only if re-sent).
        fingerprint = hashlib.sha256(mail.raw).hexdigest()
        safe_reason = storable_text(self.tokens.redact(reason), 2000)
        item = session.scalars(select(QuarantineItem).where(
            QuarantineItem.fingerprint == fingerprint, QuarantineItem.status == "held").limit(1)).first()
        if item is None:
            item = QuarantineItem(received_at=now, source=mail.source, reason=safe_reason, status="held",
                                  raw=self.tokens.redact_bytes(mail.raw), fingerprint=fingerprint, repeats=1,
                                  last_seen_at=now)
            session.add(item)
            session.flush()
        else:
            item.repeats, item.last_seen_at, item.reason = item.repeats + 1, now, safe_reason
        return IngestResult("quarantined", "", detail=f"#{item.id} {reason}")

