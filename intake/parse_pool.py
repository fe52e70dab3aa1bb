"""The forked parse worker: parsing and classification on the second core.

Why a module of its own: ``poll --once`` (a drain) and the SMTP intake of ``run`` (group
commit) both hand raw mail to one worker process that parses it and computes the verdict
(``intake.pipeline.classify_in_worker``: the opener is inherited by the fork, not pickled),
so the storing process only stores.  Everything here is an optimisation: without a pool the
pipeline parses in process, just slower, and a broken worker costs speed, never mail.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from intake.pipeline import classify_in_worker


def start_parse_pool(app: Any, *, started: bool = False) -> Executor | None:
    """One forked parse worker, or None where forking is unsafe or pointless.

    Only from a single-threaded process (forking a threaded one can inherit a lock another
    thread held) with a second core and the fork start method.  ``started``: fork the worker
    now (one no-op job), for a caller that starts threads right after (``run``: the SMTP
    controller, the dashboard, the mailbox watcher); a ProcessPoolExecutor otherwise forks on
    its first job, when those threads exist.
    """
    if threading.active_count() > 1 or (os.cpu_count() or 1) < 2:
        return None
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                               initializer=_start_worker, initargs=(os.getpid(), app.opener))
    if started:
        pool.submit(os.getpid).result(timeout=60)
    return pool


def _start_worker(parent: int, opener: Any) -> None:
    """Initializer of the parse worker: die with the parent, then classify beside the parsing."""
    _die_with_parent(parent)
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


def _die_with_parent(parent: int) -> None:
    """In the worker: end when its parent ends, even by SIGKILL (an orphan once kept 66 MB for minutes).

    Linux delivers SIGKILL to the worker when its parent dies (PR_SET_PDEATHSIG); elsewhere a daemon
    thread notices the parent is gone within a second.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()
