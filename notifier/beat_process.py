"""The beat of ``hypercare run`` (outbox, SLA sweeps, digests) in a forked process of its own.

Why: the daemon's SMTP intake answers each mail only after its group committed, so its
throughput is the number of clients over the latency of one group, and much of that latency is
the storing thread waiting for its turn at the interpreter lock.  The beat ran in the daemon's
main thread and held ~20 % of the daemon's lock samples under SMTP load (py-spy ``--gil``: the
outbox flush every second 14 %, claiming, signing, writing the Maildir or talking to the relay,
recording; the SLA and triage sweeps 5 %): every one of them a moment the storing thread and the
event loop waited.  In a process of its own the beat runs beside the intake and takes from it
only the database's write lock, which it took anyway.

What stays as it was: every job is the same code on the same rows (``service.periodic_jobs``),
and each of them is already safe beside another instance (claims, ``ScheduleRun`` rows,
idempotency keys), so a crash, a second instance and ``hypercare tick`` or ``outbox flush`` by
hand behave as before.  SIGTERM or SIGINT to it (or the daemon's stop, which sends SIGTERM)
ends the outbox's flush between two messages and puts the unsent claimed rows back; it ends
with its parent too (``PR_SET_PDEATHSIG`` SIGTERM: an orphan would go on sending for a desk
that is not running).  Where forking is unsafe (another thread runs already: a fork may inherit
a lock it held) or unavailable, ``start`` answers None and the daemon runs the beat in its main
thread as before; should the process die, the daemon takes the beat over (``Daemon.serve_forever``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from core.parent_death import end_with_parent

log = logging.getLogger("hypercare")

STOP_SECONDS = 20.0  # how long ``stop`` waits for the flush to end between two messages (systemd's TimeoutStopSec)


class BeatProcess:
    """One forked process that runs *beat* (given a stop event) until it is stopped."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process

    @classmethod
    def start(cls, app: Any, beat: Callable[[threading.Event], None]) -> BeatProcess | None:
        """Fork the beat process now; None where forking is unsafe (other threads) or unavailable."""
        if threading.active_count() > 1 or "fork" not in multiprocessing.get_all_start_methods():
            return None
        context = multiprocessing.get_context("fork")
        process = context.Process(target=_serve, args=(app, beat, os.getpid()), name="hypercare-beat",
                                  daemon=True)  # should ``stop`` never run: terminated (SIGTERM) at exit
        process.start()
        return cls(process)

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self, timeout: float = STOP_SECONDS) -> int | None:
        """SIGTERM, wait for the flush to put its rows back and end; SIGKILL after *timeout*. The exit code."""
        self.process.terminate()  # SIGTERM; nothing if it has ended already
        self.process.join(timeout)
        if self.process.is_alive():
            log.error("beat process did not stop within %.0f s; killed (its outbox claims expire)", timeout)
            self.process.kill()
            self.process.join(10)
        return self.process.exitcode


def _serve(app: Any, beat: Callable[[threading.Event], None], parent: int) -> None:
    """The forked process: *beat* until a signal or the parent's end says stop."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()
        app.outbox.stopping.set()  # the flush ends between two messages and puts its rows back

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)  # Ctrl-C reaches the whole process group: stop the same way
    end_with_parent(parent, signal.SIGTERM, lambda: on_signal(signal.SIGTERM, None))  # the same stop as SIGTERM
    # The parent's pooled connections must never be used here (nor closed: they are the parent's);
    # this process opens its own.
    app.store.engine.dispose(close=False)
    try:
        beat(stop)
    finally:
        app.store.dispose()
