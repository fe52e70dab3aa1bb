"""A free TCP port for a test server that binds it a moment later (Dovecot, the daemon, the relay).

Why a range per pytest-xdist worker: the port is free when it is chosen and bound later by another
process, so two workers asking the kernel at the same moment could be handed the same port, and one
test would then talk to the other's server.  Each worker draws from its own slice of 10000-31999,
below the kernel's ephemeral ports (32768 and up), which it hands out for port 0 and outgoing
connections; without xdist the kernel chooses, as before.
"""

from __future__ import annotations

import os
import random
import socket

_FIRST, _LAST = 10000, 32000


def free_port() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return _bound_port(0)
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    span = (_LAST - _FIRST) // count
    start = _FIRST + (int(worker[2:]) % count) * span
    for _ in range(1000):
        try:
            return _bound_port(random.randrange(start, start + span))
        except OSError:  # in use, or in TIME_WAIT from an earlier test
            continue
    return _bound_port(0)


def _bound_port(port: int) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        return int(sock.getsockname()[1])
