"""The forked parse worker: parsing and classification on the second core.

Why a module of its own: ``poll --once`` (a drain) and the SMTP intake of ``run`` (group
commit) both hand raw mail to one worker process that parses it and computes the verdict
(``intake.pipeline.classify_in_worker``: the opener is inherited by the fork, not pickled),
so the storing process only stores.  Everything here is an optimisation: without a pool the
pipeline parses in process, just slower, and a broken worker costs speed, never mail.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from config import IntakeSettings
from core.parent_death import end_with_parent
from intake.parse.message import ParsedMessage
from intake.pipeline import RawMail, classify_in_worker, parse_mails


def start_parse_pool(app: Any, *, started: bool = False, in_caller: bool = False) -> Executor | None:
    """One forked parse worker, or None where forking is unsafe or pointless.

    Only from a single-threaded process (forking a threaded one can inherit a lock another
    thread held) with a second core and the fork start method.  ``started``: fork the worker
    now (one no-op job), for a caller that starts threads right after (``run``: the SMTP
    controller, the dashboard, the mailbox watcher); a ProcessPoolExecutor otherwise forks on
    its first job, when those threads exist.  ``in_caller``: every caller waits for its answer
    at once (``run``'s SMTP intake), so each call is made over a pipe in the caller's thread
    (``PipeWorker``, forked now); ``poll --once`` keeps the pool, whose calls run ahead.
    """
    if threading.active_count() > 1 or (os.cpu_count() or 1) < 2:
        return None
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    if in_caller:
        return PipeWorker(app.opener)
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker, initargs=(os.getpid(), app.opener))
    if started:
        pool.submit(os.getpid).result(timeout=60)
    return pool


class _Part:
    """A few mails of a batch: parsed by the worker (``future``) or, taken back before it began, here."""

    __slots__ = ("mails", "limits", "received_at", "future", "here")

    def __init__(self, mails: list[RawMail], limits: IntakeSettings, received_at: datetime) -> None:
        self.mails = mails
        self.limits = limits
        self.received_at = received_at
        self.future: Future[list[ParsedMessage | str]] | None = None
        self.here: list[ParsedMessage | str] | None = None


class ParseJob:
    """One batch's parse (``ParsePool.parse``); ``result()`` as a Future's, the mails in their order."""

    def __init__(self, pool: ParsePool, parts: list[_Part]) -> None:
        self.pool = pool
        self.parts = parts

    def result(self) -> list[ParsedMessage | str]:
        """The parsed batch; raises what the worker raised (the caller then parses in process)."""
        out: list[ParsedMessage | str] = []
        for part in self.parts:
            out.extend(self.pool.part_result(part))
        return out


class ParsePool:
    """The parse worker of a drain, which the storing process helps instead of waiting for it.

    Why: the two processes do about the same work per mail (parse and classify there, store here), and
    which one is slower depends on the mail and the machine; whenever the storing process had to wait
    for a batch, one core idled (~0.5 s of a 5,000-mail drain, docs/performance.md).  So a batch is
    handed to the worker in parts of ``PART`` mails, and when the storing process would wait, it takes
    back the newest part the worker has not begun and parses (and classifies) it itself, with the same
    opener and the same arrival time, so the outcome is the same whichever process parsed a mail.
    """

    PART = 25  # ~15 ms of work: small enough that taking one back never keeps the store waiting long

    def __init__(self, executor: Executor, opener: Any) -> None:
        self.executor = executor
        self.opener = opener
        self._waiting: deque[_Part] = deque()  # handed to the worker, oldest first; some may have begun
        self._lock = threading.Lock()
        self.taken_back = 0  # mails parsed here (tests, bench)

    def parse(self, mails: Sequence[RawMail], limits: IntakeSettings, received_at: datetime) -> ParseJob:
        """Hand *mails* to the worker (called by the drain's I/O thread)."""
        parts = [_Part(list(mails[i:i + self.PART]), limits, received_at) for i in range(0, len(mails), self.PART)]
        for part in parts:
            try:
                part.future = self.executor.submit(parse_mails, part.mails, limits, received_at)
            except RuntimeError as exc:  # the worker died (BrokenProcessPool) or was shut down
                part.future = Future()
                part.future.set_exception(exc)  # result() raises: the drain parses the batch in process
                continue
            with self._lock:
                while self._waiting and self._waiting[0].future.done():  # type: ignore[union-attr]
                    self._waiting.popleft()
                self._waiting.append(part)
        return ParseJob(self, parts)

    def part_result(self, part: _Part) -> list[ParsedMessage | str]:
        """*part*'s mails parsed; while the worker is not done with it, parse the parts it has not begun here."""
        while part.here is None:
            future = part.future
            assert future is not None
            if future.done() or not self._take_one_back():
                return future.result()
        return part.here

    def _take_one_back(self) -> bool:
        """Parse the newest part the worker has not begun here; False when it has begun every one."""
        with self._lock:
            while self._waiting:
                part = self._waiting.pop()
                if part.future is not None and part.future.cancel():
                    break
                # The worker takes parts in order: when the newest has begun, so has every older one.
                self._waiting.clear()
            else:
                return False
        part.here = parse_mails(part.mails, part.limits, part.received_at, opener=self.opener)
        self.taken_back += len(part.mails)
        return True

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)


class PipeWorker(Executor):
    """One forked worker that answers each call over a pipe, in the thread that makes it.

    Why not a ProcessPoolExecutor for ``run``: each of its calls crosses two more threads of the
    daemon (the queue feeder, the result manager), and each crossing waits for the interpreter
    lock that the storing thread holds most of the time: ~6 % of the daemon's lock time (py-spy
    ``--gil``) and up to a switch interval of latency per crossing.  The SMTP intake's feeding
    thread waits for every answer anyway, so ``submit`` sends the call and receives the answer
    itself and returns a finished future.  A worker that died (or a pipe that broke) raises
    ``BrokenProcessPool``, as the pool does; the caller then parses in process.
    """

    def __init__(self, opener: Any) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self._conn, os.getpid(), opener),
                                        name="hypercare-parse", daemon=True)
        self._process.start()
        child.close()
        self._lock = threading.Lock()
        self._broken = False

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._broken:
                raise BrokenProcessPool("the parse worker is gone")
            try:
                self._conn.send((fn, args, kwargs))
                ok, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._broken = True
                raise BrokenProcessPool(f"the parse worker is gone ({type(exc).__name__})") from None
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """End the worker: it ends when its pipe closes (a call in flight is answered first)."""
        with self._lock:
            self._broken = True
            self._conn.close()
        if wait:
            self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10)


def _serve(conn: Connection, parents_end: Connection, parent: int, opener: Any) -> None:
    """The worker of a ``PipeWorker``: answers (ok, result or exception) each call until the pipe closes."""
    parents_end.close()  # inherited by the fork: held here, the parent's close would never reach us as EOF
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; the worker ends with it
    _start_worker(parent, opener)
    while True:
        try:
            fn, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[bool, Any] = (True, fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - the caller decides what a failed call means
            answer = (False, exc)
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # noqa: BLE001 - an answer that cannot be pickled: say so, in one line
            conn.send((False, RuntimeError(f"parse worker answer not sendable: {type(exc).__name__}: {exc}")))


def _start_worker(parent: int, opener: Any) -> None:
    """Initializer of the parse worker: die with the parent, then classify beside the parsing."""
    end_with_parent(parent, signal.SIGKILL, lambda: os._exit(1))  # an orphan once kept 66 MB for minutes
    fewer_collections()
    classify_in_worker(opener)


def fewer_collections() -> None:
    """For a process that drains mail in batches: the cyclic garbage collector runs less often.

    Why: parsing and storing a mail allocate thousands of objects, nearly all freed by reference counting
    at once, yet every 700 allocations the collector scanned the young ones, and often the long-lived
    objects of the start (SQLAlchemy, the rules, the templates) too: ~0.1 ms of the storing process's
    ~0.9 ms per mail (``bench/store_cpu.py``).  Objects that exist now are frozen out of the scans;
    collections come every 20,000 allocations.  Cyclic garbage is still collected; memory stays flat.
    """
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)
