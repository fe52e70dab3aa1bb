"""A forked helper process that ends with the process that forked it.

Why: the parse worker and ``run``'s beat process are forked children; should the daemon die, even by
SIGKILL, an orphan would keep memory (a worker once kept 66 MB for minutes) or go on sending mail for a
desk that is not running.  Linux delivers a signal to the child when its parent dies
(``PR_SET_PDEATHSIG``); elsewhere a daemon thread notices within a second that the parent is gone.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int, signum: int, on_gone: Callable[[], None]) -> None:
    """In the child: *signum* when *parent* dies (Linux), and *on_gone* if it is gone already or, where
    the signal cannot be asked for, once a thread sees it gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the prctl took effect
        on_gone()
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        on_gone()

    threading.Thread(target=watch, name="parent watch", daemon=True).start()
