"""Group commit for the SMTP intake: mail from concurrent sessions stored in one shared transaction.

Why: each DATA used to be its own ``ingest`` (one transaction, one fsync, one pass through the
batch machinery for a single mail), so eight parallel clients queued on the database's write
lock one mail at a time.  Here every DATA hands its bytes to one storing thread and waits;
the thread takes everything that arrived while it was busy and stores it with one
``ingest_batch`` (the batched write path for the common case).  A lone mail is stored at once
(no waiting for company), so latency does not grow; under load, batches form by themselves.

With a parse pool (``intake.parse_pool``, started by ``run``) the work is a two-stage pipe:
the group taken now is parsed and classified in the worker process while the group taken
before is stored, so parsing neither holds the storing thread nor competes with the event
loop for this process's one interpreter lock.

One mail, one outcome: the 250 is given only after the mail's batch committed.  Within a
batch each mail has its own outcome (``ingest_batch``: a poison mail is quarantined alone);
when the database cannot store, every mail of that batch gets the exception (451, the sender
retries) and nothing of it was committed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Executor, Future
from typing import Any

from intake.pipeline import IngestPipeline, IngestResult, RawMail, parse_mails

log = logging.getLogger("hypercare.smtp")

MAX_BATCH = 200  # as the IMAP and file intakes

_Group = list[tuple[RawMail, "Future[IngestResult]"]]


class GroupCommitter:
    """One storing thread for all SMTP sessions; ``await ingest(mail)`` returns its result."""

    def __init__(self, pipeline: IngestPipeline, max_batch: int = MAX_BATCH,
                 parse_pool: Executor | None = None) -> None:
        self.pipeline = pipeline
        self.max_batch = max_batch
        self.parse_pool = parse_pool
        self._pending: _Group = []
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    async def ingest(self, mail: RawMail) -> IngestResult:
        future: Future[IngestResult] = Future()
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hypercare-smtp-store", daemon=True)
                self._thread.start()
            self._pending.append((mail, future))
            self._wake.notify()
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        """Store what is queued, then end the thread."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(60)

    def _run(self) -> None:
        parsing: tuple[_Group, Future[Any] | None] | None = None  # taken, handed to the worker, not stored yet
        while True:
            with self._wake:
                while not self._pending and not self._stopping and parsing is None:
                    self._wake.wait()
                group, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            if not group and parsing is None:
                return  # stopping, and everything queued is stored
            upcoming = (group, self._parse(group)) if group else None
            if parsing is not None:
                self._store(*parsing)  # while the worker parses the group just taken
            parsing = upcoming
            if parsing is not None and parsing[1] is None:
                self._store(*parsing)  # no worker (any more): nothing to overlap, store it now
                parsing = None

    def _parse(self, group: _Group) -> Future[Any] | None:
        """Hand *group* to the parse worker; None (parse in process) without one or when it cannot take it."""
        if self.parse_pool is None:
            return None
        try:
            return self.parse_pool.submit(parse_mails, [mail for mail, _future in group],
                                          self.pipeline.config.intake, self.pipeline.clock.now())
        except Exception as exc:  # noqa: BLE001 - a broken or shut-down pool costs speed, never mail
            log.warning("smtp parse worker unavailable (%s: %s); parsing in process", type(exc).__name__, exc)
            self.parse_pool = None
            return None

    def _store(self, group: _Group, parsing: Future[Any] | None) -> None:
        """One ``ingest_batch`` for *group*; each session's future gets its mail's outcome."""
        if not group:
            return
        prepared = None
        if parsing is not None:
            try:
                prepared = parsing.result()
            except Exception as exc:  # noqa: BLE001 - the worker died: parse here, nothing is lost
                log.warning("smtp parse worker failed (%s: %s); parsing in process", type(exc).__name__, exc)
        try:
            results = self.pipeline.ingest_batch([mail for mail, _future in group], prepared=prepared)
        except BaseException as exc:  # every waiting session hears it (451 or 5xx)
            for _mail, future in group:
                future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_mail, future), result in zip(group, results, strict=True):
            future.set_result(result)
