"""Group commit for the SMTP intake: mail from concurrent sessions stored in one shared transaction.

Why: each DATA used to be its own ``ingest`` (one transaction, one fsync, one pass through the
batch machinery for a single mail), so eight parallel clients queued on the database's write
lock one mail at a time.  Here every DATA hands its bytes to one storing thread and waits;
the thread takes everything that arrived while it was busy and stores it with one
``ingest_batch`` (the batched write path for the common case).  A lone mail is stored at once
(no waiting for company), so latency does not grow; under load, batches form by themselves.
The 250 is still given only after the mail's batch committed; when the database cannot store,
every mail of that batch gets the exception (451, the sender retries).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future

from intake.pipeline import IngestPipeline, IngestResult, RawMail

log = logging.getLogger("hypercare.smtp")

MAX_BATCH = 200  # as the IMAP and file intakes


class GroupCommitter:
    """One storing thread for all SMTP sessions; ``await ingest(mail)`` returns its result."""

    def __init__(self, pipeline: IngestPipeline, max_batch: int = MAX_BATCH) -> None:
        self.pipeline = pipeline
        self.max_batch = max_batch
        self._pending: list[tuple[RawMail, Future[IngestResult]]] = []
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
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            try:
                results = self.pipeline.ingest_batch([mail for mail, _future in batch])
            except BaseException as exc:  # every waiting session hears it (451 or 5xx)
                for _mail, future in batch:
                    future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_mail, future), result in zip(batch, results, strict=True):
                future.set_result(result)
