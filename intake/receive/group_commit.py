"""Group commit for the SMTP intake: mail from concurrent sessions stored in one shared transaction.

Why: each DATA used to be its own ``ingest`` (one transaction, one fsync, one pass through the
batch machinery for a single mail), so eight parallel clients queued on the database's write
lock one mail at a time.  Here every DATA hands its bytes to one storing thread and waits;
the thread takes everything that arrived while it was busy and stores it with one
``ingest_batch`` (the batched write path for the common case).  A lone mail is stored at once
(no waiting for company), so latency does not grow; under load, batches form by themselves.

With a parse pool (``intake.parse_pool``, started by ``run``) a second thread hands each mail
to the worker process as soon as it arrives (with whatever else arrived meanwhile), and the
storing thread takes everything parsed so far.  So a mail that arrives while a group commits
is parsed during that commit and stored by the next one: one commit of waiting, not two (the
first pipe took a group only when the commit before it ended, parsed it while the next group
committed and stored it after that: two and a half commits, with half the mails per group).

One mail, one outcome: the 250 is given only after the mail's batch committed.  Within a
batch each mail has its own outcome (``ingest_batch``: a poison mail is quarantined alone);
when the database cannot store, every mail of that batch gets the exception (451, the sender
retries) and nothing of it was committed.  The sessions of a group hear their outcomes with
one wake-up of their event loop, not one each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from intake.parse.message import ParsedMessage
from intake.pipeline import IngestPipeline, IngestResult, RawMail, parse_mails

log = logging.getLogger("hypercare.smtp")

MAX_BATCH = 200  # as the IMAP and file intakes
LINGER_SHARE = 0.5  # a group waits for the other sessions' mail at most this share of the last commit's time
LINGER_MAX = 0.005  # and never longer than this (seconds)


@dataclass
class _Waiting:
    """One session's mail: its outcome goes to *future*, on the session's event *loop*."""

    mail: RawMail
    future: asyncio.Future[IngestResult]
    loop: asyncio.AbstractEventLoop
    parsed: ParsedMessage | str | None = None  # the worker's parse; None: parse in the storing thread


class GroupCommitter:
    """One storing thread for all SMTP sessions (and one feeding the parse worker); ``await ingest(mail)``."""

    def __init__(self, pipeline: IngestPipeline, max_batch: int = MAX_BATCH,
                 parse_pool: Executor | None = None, sessions: Callable[[], int] | None = None) -> None:
        self.pipeline = pipeline
        # How many SMTP sessions are open: a group may wait a moment for the mail of those that will send soon.
        self.sessions = sessions
        self._last_store = 0.0  # seconds the last group took to store
        self.max_batch = max_batch
        self.parse_pool = parse_pool
        self._feeding = parse_pool is not None  # a thread feeds the worker (it stays, should the worker die)
        self._pending: list[_Waiting] = []  # arrived; with a worker: not handed to it yet
        self._parsed: list[_Waiting] = []  # with a worker: back from it (or given up on), to be stored
        self._wake = threading.Condition()
        self._stopping = False
        self._parsing = False  # the feeding thread holds mail taken from _pending
        self._threads: list[threading.Thread] = []

    async def ingest(self, mail: RawMail) -> IngestResult:
        loop = asyncio.get_running_loop()
        waiting = _Waiting(mail, loop.create_future(), loop)
        with self._wake:
            if not self._threads:
                self._start()
            self._pending.append(waiting)
            self._wake.notify_all()
        return await waiting.future

    def _start(self) -> None:
        targets = [(self._store_loop, "hypercare-smtp-store")]
        if self._feeding:
            targets.append((self._parse_loop, "hypercare-smtp-parse"))
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Store what is queued, then end the threads."""
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join(60)

    # --- the feeding thread: arrived mail to the worker at once --------------------------------
    def _parse_loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if not self._pending:
                    return  # stopping, and everything that arrived went on to the store
                group, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                self._parsing = True
            try:
                for waiting, parsed in zip(group, self._parse(group), strict=True):
                    waiting.parsed = parsed
            finally:
                with self._wake:
                    self._parsed.extend(group)
                    self._parsing = False
                    self._wake.notify_all()

    def _parse(self, group: list[_Waiting]) -> list[ParsedMessage | str | None]:
        """The worker's parse of *group*; None for each mail when there is no worker (any more)."""
        if self.parse_pool is not None:
            try:
                # The guards too: this worker has time to spare, the storing thread has none (parse_mails).
                parsed = self.parse_pool.submit(parse_mails, [w.mail for w in group], self.pipeline.config.intake,
                                                self.pipeline.clock.now(), guards=True).result()
                if len(parsed) == len(group):
                    return list(parsed)
            except Exception as exc:  # noqa: BLE001 - a broken or shut-down worker costs speed, never mail
                log.warning("smtp parse worker unavailable (%s: %s); parsing in process", type(exc).__name__, exc)
                self.parse_pool = None
        return [None] * len(group)

    # --- the storing thread ----------------------------------------------------------------------
    def _store_loop(self) -> None:
        # Without a worker the storing thread takes arrived mail itself (and parses it).
        while True:
            with self._wake:
                source = self._parsed if self._feeding else self._pending
                while not source and not (self._stopping and not self._pending and not self._parsing):
                    self._wake.wait()
                if not source:
                    return  # stopping, and everything queued is stored
                self._linger(source)
                group, source[:] = source[:self.max_batch], source[self.max_batch:]
            started = time.perf_counter()
            self._store(group)
            self._last_store = time.perf_counter() - started

    def _linger(self, source: list[_Waiting]) -> None:
        """With the lock held and mail in *source*: wait a moment for the mail of the other open sessions.

        Why: with N clients each waiting for its 250, groups split into cohorts (those answered by
        the last commit send again while the others are being stored) and every group pays the
        transaction's fixed cost (a dozen statements) for a few mails.  Waiting up to half the last
        commit's time for the other sessions' mail joins the cohorts; one commit for all costs less
        than the wait.  Never longer than that, and never when every open session's mail is here:
        a lone mail is stored at once, an idle session delays a group by at most the bound.
        """
        if self.sessions is None or self._stopping:
            return
        wanted = min(self.max_batch, self.sessions())
        if len(source) >= wanted:
            return
        deadline = time.monotonic() + min(LINGER_MAX, LINGER_SHARE * self._last_store)
        while len(source) < wanted and not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(left)

    def _store(self, group: list[_Waiting]) -> None:
        """One ``ingest_batch`` for *group*; each session gets its mail's outcome."""
        mails = [w.mail for w in group]
        prepared: list[ParsedMessage | str | None] = [w.parsed for w in group]
        outcomes: list[IngestResult | BaseException]
        try:
            missing = [i for i, item in enumerate(prepared) if item is None]
            if missing:  # no worker, or it failed: parse here, before the transaction
                for i, item in zip(missing, parse_mails([mails[i] for i in missing], self.pipeline.config.intake),
                                   strict=True):
                    prepared[i] = item
            outcomes = list(self.pipeline.ingest_batch(mails, prepared=prepared))  # type: ignore[arg-type]
        except BaseException as exc:  # every waiting session hears it (451 or 5xx)
            outcomes = [exc] * len(group)
            if not isinstance(exc, Exception):
                _deliver_all(group, outcomes)
                raise
        _deliver_all(group, outcomes)


def _deliver_all(group: list[_Waiting], outcomes: list[IngestResult | BaseException]) -> None:
    """Hand each session its outcome: one ``call_soon_threadsafe`` per event loop (one wake-up)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for waiting, outcome in zip(group, outcomes, strict=True):
        by_loop.setdefault(waiting.loop, []).append((waiting.future, outcome))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, pairs)
        except RuntimeError:  # the loop is closed: its sessions are gone
            pass


def _settle(pairs: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in pairs:
        if future.done():  # the session went away meanwhile (its task was cancelled)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
