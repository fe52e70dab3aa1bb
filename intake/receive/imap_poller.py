"""The IMAP poller: fetch new UIDs in batches, ingest, and only then move or flag them.

Why this order (DESIGN step 8): the mail leaves the inbox only after its batch has
committed, so a crash, a dropped connection or a database outage at any point means
the mail is fetched again later and deduplication absorbs it: at-least-once delivery
plus an idempotent store gives exactly-once effect.  Nothing is marked read before
commit (BODY.PEEK[]).  Progress is tracked per mailbox by UIDVALIDITY and the last
UID done (``ImapState``); a changed UIDVALIDITY means the server renumbered the
mailbox, so we re-scan it from the start and let dedup absorb what we already have.

Health (``last_success_at``, ``last_error``, ``waiting``) is written to the same row
so ``hypercare status`` can show it from any process without touching the server.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import IMAPClientError

from config import ImapSettings
from intake.pipeline import IngestPipeline, IngestResult, IngestUnavailable, RawMail
from intake.receive.imap_connect import (
    ImapConfigProblem,
    ImapError,
    ImapFolderMissing,
    connect,
    translate,
)
from tickets.clock import Clock
from tickets.health import mailbox_key
from tickets.models import ImapState
from tickets.store import Store

if TYPE_CHECKING:
    from intake.parse_pool import ParseJob, ParsePool

log = logging.getLogger("hypercare.imap")
PREFETCH_BYTES = 8 << 20  # a batch of at most this much raw mail may have two more fetched behind it
RAMP_FROM = 16  # a long drain's first batch: batch_size / 8 mails when that is at least this many (see chunked)


@dataclass
class PollReport:
    """What one drain did; ``outcomes`` counts pipeline actions (created, duplicate, ...)."""

    mailbox: str
    fetched: int = 0
    moved: int = 0
    flagged: int = 0
    batches: int = 0
    waiting: int = 0
    rescanned: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.fetched / self.seconds

    def summary(self) -> str:
        counts = ", ".join(f"{n} {action}" for action, n in sorted(self.outcomes.items())) or "nothing new"
        done = f"moved {self.moved}" if self.moved or not self.flagged else f"flagged \\Seen {self.flagged}"
        text = f"{self.mailbox}: {self.fetched} fetched in {self.seconds:.1f}s ({self.rate:.0f} msg/s): {counts}"
        if self.fetched:
            text += f"; {done}"
        if self.rescanned:
            text += "; UIDVALIDITY changed, mailbox re-scanned"
        return text


BatchHook = Callable[[PollReport, list[IngestResult]], None]


class ImapPoller:
    """One mailbox. Keeps its connection between polls (IDLE needs it); any error drops it."""

    def __init__(self, settings: ImapSettings, store: Store, pipeline: IngestPipeline, clock: Clock,
                 environ: Mapping[str, str], ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.store = store
        self.pipeline = pipeline
        self.clock = clock
        self.environ = environ
        self.ssl_context = ssl_context
        self.key = mailbox_key(settings)
        self.client: IMAPClient | None = None
        self.use_move: bool | None = None  # None: use MOVE when the server offers it
        # A process pool (one worker) parses batch n+1 while batch n is stored; ``poll --once`` sets it.
        self.parse_pool: ParsePool | None = None
        self._processed_ready = False
        self._last_logged: str | None = None  # the error already logged at WARNING (log once)

    # --- public ----------------------------------------------------------------------------------
    def poll(self, on_batch: BatchHook | None = None) -> PollReport:
        """Drain the folder in batches; on failure record it as mailbox health and raise.

        Raises an ImapError (connection, login, folder) or IngestUnavailable (database); in
        both cases the unfinished batch stays in the mailbox for the next poll.
        """
        report = PollReport(self.key)
        try:
            client = self._session()
            self._drain(client, report, on_batch)
        except IngestUnavailable as exc:
            self._record_failure(str(exc), report)
            raise
        except (ImapError, OSError, IMAPClientError, EOFError) as exc:
            error = translate(exc, f"{self.settings.host}:{self.settings.port}")
            self.close()
            self._record_failure(str(error), report)
            raise error from None
        self._record_success(report)
        return report

    def record_lost(self, error: str) -> None:
        """The kept connection died outside a poll (in IDLE): drop it, log once, mark the mailbox failing."""
        self.close()
        self._record_failure(error, PollReport(self.key))

    def can_idle(self) -> bool:
        return self.client is not None and self.client.has_capability("IDLE")

    def close(self) -> None:
        client, self.client = self.client, None
        self._processed_ready = False
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - the connection may already be gone; closing is best effort
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    # --- the drain ---------------------------------------------------------------------------------
    def _session(self) -> IMAPClient:
        if self.client is not None:
            try:
                self.client.noop()
                return self.client
            except (OSError, IMAPClientError, EOFError):
                log.debug("imap %s: kept connection is gone, reconnecting", self.key)
                self.close()
        self.client = connect(self.settings, self.environ, self.ssl_context)
        return self.client

    def _drain(self, client: IMAPClient, report: PollReport, on_batch: BatchHook | None) -> None:
        folder = self.settings.folder
        if self.settings.processed_folder == folder:
            raise ImapConfigProblem(f"[imap] processed_folder {folder!r} is the polled folder itself; "
                                    "name another folder, or \"\" to flag mail \\Seen in place")
        try:
            selected = client.select_folder(folder)
        except IMAPClientError as exc:
            raise ImapFolderMissing(f"IMAP {self.key}: cannot select folder {folder!r} ({exc}); "
                                    "check [imap] folder") from None
        self._ensure_processed_folder(client)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        last_uid = self._start_point(uidvalidity, report)
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        report.waiting = len(uids)
        chunks = chunked(uids, max(1, self.settings.batch_size))
        if not chunks:
            return
        # One thread does the IMAP round trips (FETCH of the next batches, MOVE of the last one) while this one
        # stores: the server's time overlaps the store's instead of adding to it.  A MOVE is sent only once its
        # batch has committed, and the progress (last UID) is recorded only once its MOVE is done, as before.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap io") as io:
            ahead: deque[Future[tuple[list[int], list[RawMail], ParseJob | None]]] = deque()
            ahead.append(io.submit(self._fetch, client, chunks[0]))
            wanted = 1  # the next chunk to fetch
            settling: Future[None] | None = None
            done: tuple[list[int], int, list[IngestResult]] | None = None  # the batch being settled
            try:
                for index in range(len(chunks)):
                    present, mails, parsing = ahead.popleft().result()
                    # Fetch the next batches (and let the worker parse them) while this one is stored: two cores
                    # busy.  Two ahead, so the worker has the next batch queued when it finishes one, unless the
                    # mail is big (the batch is the unit of memory).
                    depth = 2 if sum(len(mail.raw) for mail in mails) <= PREFETCH_BYTES else 1
                    while wanted < len(chunks) and len(ahead) < depth:
                        ahead.append(io.submit(self._fetch, client, chunks[wanted]))
                        wanted += 1
                    results = self.pipeline.ingest_batch(mails, prepared=_result(parsing))
                    del mails
                    if settling is not None and done is not None:
                        settling.result()
                        settling = None
                        self._settled(report, uidvalidity, uids, chunks, done, on_batch)
                    # Committed: only now may the mail leave the inbox.
                    settling, done = io.submit(self._settle, client, present), (present, index, results)
                if settling is not None and done is not None:
                    settling.result()
                    settling = None
                    self._settled(report, uidvalidity, uids, chunks, done, on_batch)
            except BaseException:
                # A later batch failed (database gone, connection lost): a MOVE already under way is recorded
                # if it went through, so the report and the mailbox's progress say what really happened.
                if settling is not None and done is not None and settling.exception() is None:
                    self._settled(report, uidvalidity, uids, chunks, done, None)
                raise

    def _settled(self, report: PollReport, uidvalidity: int, uids: list[int], chunks: list[list[int]],
                 done: tuple[list[int], int, list[IngestResult]], on_batch: BatchHook | None) -> None:
        """A batch is stored and out of the inbox: record the progress (the mailbox's last UID, the report)."""
        present, index, results = done
        report.waiting = len(uids) - sum(len(c) for c in chunks[:index + 1])
        self._advance(uidvalidity, chunks[index][-1], report.waiting)
        report.fetched += len(present)
        if self.settings.processed_folder:
            report.moved += len(present)
        else:
            report.flagged += len(present)
        report.batches += 1
        report.outcomes.update(r.action for r in results)
        if on_batch is not None:
            on_batch(report, results)

    def _ensure_processed_folder(self, client: IMAPClient) -> None:
        """Create processed_folder once; one the server refuses is a config error, found before any mail is read.

        Why before the batch: found after the commit, every poll stored (or quarantined) the same mail
        again and left it in the inbox, a loop; now nothing is fetched until the folder exists.
        """
        target = self.settings.processed_folder
        if not target or self._processed_ready:
            return
        if not client.folder_exists(target):
            try:
                client.create_folder(target)
                log.info("imap %s: created folder %r", self.key, target)
            except IMAPClientError as exc:
                if not client.folder_exists(target):  # created concurrently is fine; anything else is not
                    raise ImapConfigProblem(f"IMAP {self.key}: cannot create [imap] processed_folder {target!r} "
                                            f"({exc}); create it on the server or name another") from None
        self._processed_ready = True

    def _fetch(self, client: IMAPClient, chunk: list[int]) -> tuple[list[int], list[RawMail], ParseJob | None]:
        """FETCH BODY.PEEK[] (nothing marked read); hand the bytes to the parse worker when there is one."""
        fetched = client.fetch(chunk, ["BODY.PEEK[]"])
        present = [uid for uid in chunk if b"BODY[]" in fetched.get(uid, {})]  # others were expunged meanwhile
        mails = [RawMail(fetched[uid][b"BODY[]"], "imap") for uid in present]
        parsing = None
        if self.parse_pool is not None and mails:
            parsing = self.parse_pool.parse(mails, self.pipeline.config.intake, self.clock.now())
        return present, mails, parsing

    def _settle(self, client: IMAPClient, uids: list[int]) -> None:
        """Move committed mail to processed_folder, or flag it \\Seen when there is none."""
        if not uids:
            return
        target = self.settings.processed_folder
        if not target:
            client.add_flags(uids, [SEEN], silent=True)
            return
        self._ensure_processed_folder(client)
        use_move = client.has_capability("MOVE") if self.use_move is None else self.use_move
        try:
            if use_move:
                client.move(uids, target)
                return
            client.copy(uids, target)
        except IMAPClientError as exc:
            if "EXPUNGEISSUED" not in str(exc).upper():
                raise
            # Another instance (a second `poll --once`) settled these first: they are stored, nothing to do.
            log.debug("imap %s: some of %s were already moved by another poller", self.key, len(uids))
            return
        client.add_flags(uids, [DELETED], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()

    # --- state and health -----------------------------------------------------------------------
    def _start_point(self, uidvalidity: int, report: PollReport) -> int:
        with self.store.session() as session:
            state = session.get(ImapState, self.key)
            if state is None:
                state = ImapState(mailbox=self.key, uidvalidity=uidvalidity, last_uid=0)
                session.add(state)
                return 0
            if state.uidvalidity is not None and state.uidvalidity != uidvalidity:
                log.warning("imap %s: UIDVALIDITY changed %s -> %s; re-scanning the folder "
                            "(already stored mail is recognised as duplicate)",
                            self.key, state.uidvalidity, uidvalidity)
                state.last_uid = 0
                report.rescanned = True
            state.uidvalidity = uidvalidity
            return int(state.last_uid or 0)

    def _advance(self, uidvalidity: int, last_uid: int, waiting: int) -> None:
        # Bookkeeping: the batch was committed durably before its MOVE; lost, this only costs a search.
        with self.store.bookkeeping() as session:
            state = session.get(ImapState, self.key)
            if state is None:
                state = ImapState(mailbox=self.key)
                session.add(state)
            state.uidvalidity, state.last_uid, state.waiting = uidvalidity, last_uid, waiting
            state.last_success_at = self.clock.now()

    def _record_success(self, report: PollReport) -> None:
        now = self.clock.now()
        self._save_health(lambda state: _success(state, now, report.waiting))
        if self._last_logged is not None:
            log.info("imap %s: recovered, polling again", self.key)
            self._last_logged = None
        if report.fetched or report.rescanned:
            log.info("imap %s", report.summary())

    def _record_failure(self, error: str, report: PollReport) -> None:
        """Log a failure once at WARNING (repeats at DEBUG) and record it for ``hypercare status``."""
        if error != self._last_logged:
            log.warning("imap %s: %s", self.key, error)
            self._last_logged = error
        else:
            log.debug("imap %s: still failing: %s", self.key, error)
        now = self.clock.now()
        self._save_health(lambda state: _failure(state, now, error, report))

    def _save_health(self, update: Callable[[ImapState], None]) -> None:
        try:
            with self.store.bookkeeping() as session:  # health, not mail: need not wait for the disk
                state = session.get(ImapState, self.key)
                if state is None:
                    state = ImapState(mailbox=self.key, last_uid=0)
                    session.add(state)
                update(state)
        except Exception as exc:  # noqa: BLE001 - health is best effort when the database itself is down
            log.debug("imap %s: could not record health: %s: %s", self.key, type(exc).__name__, exc)


def chunked(uids: list[int], size: int) -> list[list[int]]:
    """*uids* in batches of *size*; a drain longer than one batch starts with smaller ones, doubling.

    Why: nothing is stored until the first batch has been fetched and parsed (by the parse worker,
    ~0.6 ms a mail: ~0.15 s for 200, while the storing process waits), and after it the fetches
    and the worker stay ahead of the store anyway.  Starting with batch_size / 8 (then 1/4, 1/2)
    lets the store begin almost at once; a few more commits, each still before its MOVE.
    """
    sizes: list[int] = []
    step = size // 8
    if len(uids) > size and step >= RAMP_FROM:
        while step < size:
            sizes.append(step)
            step *= 2
    chunks: list[list[int]] = []
    start = 0
    while start < len(uids):
        end = start + (sizes[len(chunks)] if len(chunks) < len(sizes) else size)
        chunks.append(uids[start:end])
        start = end
    return chunks


def _result(parsing: ParseJob | None) -> Any:
    """The worker's parse, or None (the pipeline then parses itself) if there is none or it broke."""
    if parsing is None:
        return None
    try:
        return parsing.result()
    except Exception as exc:  # noqa: BLE001 - a dead worker costs speed, never mail
        log.warning("imap parse worker failed (%s: %s); parsing in process", type(exc).__name__, exc)
        return None


def _success(state: ImapState, now: datetime, waiting: int) -> None:
    state.last_success_at, state.waiting = now, waiting


def _failure(state: ImapState, now: datetime, error: str, report: PollReport) -> None:
    state.last_error, state.last_error_at = error[:2000], now
    if report.waiting or report.fetched:
        state.waiting = report.waiting
