"""Benchmark: the bomb and poison mails of issue #12 through the real ingest pipeline, one process.

Usage (from the project root):

    .venv/bin/python bench/hostile.py [--database URL] [--big-mb 47] [--skip-big]

Each generated mail (tests/hostile_mails.py) is ingested by ``IngestPipeline.ingest`` (parse, guards,
dedup, thread, classify, store, the acknowledgement rendered into the outbox) on a fresh database; the
script prints the outcome, the wall time per mail and the process's resident memory (current and peak)
after it.  The big mail runs last, so its memory cost is the peak after it minus the resident memory
before it.  Targets (issue #12): each mail < 1 s, peak RSS < 300 MB for the whole run, the big mail
< 3x its size.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import hostile_mails  # noqa: E402

from app import App  # noqa: E402
from config import Config, DatabaseSettings  # noqa: E402
from tickets.clock import FrozenClock  # noqa: E402

MB = 1024 * 1024


def current_rss() -> int:
    """Resident bytes now (Linux /proc), for the before/after of the big mail."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--big-mb", type=int, default=47, help="size of the big mail in MB (default 47)")
    parser.add_argument("--skip-big", action="store_true", help="leave out the big mail")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    url = args.database or f"sqlite:///{workdir / 'hostile.db'}"
    app = App(Config(base_dir=workdir, database=DatabaseSettings(url=url)),
              FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)), out=io.StringIO(), err=io.StringIO(), environ={})
    app.store.upgrade()
    app.pipeline.ingest(hostile_mails.nul_bytes("warmup"))  # imports, templates, classifier compiled
    print(f"baseline: rss {current_rss() / MB:.0f} MB, peak {peak_rss() / MB:.0f} MB, load {os.getloadavg()}")
    print(f"{'mail':<24} {'bytes':>10} {'seconds':>8} {'rss MB':>7} {'peak MB':>8}  outcome")
    slowest = 0.0
    for name, make in [*hostile_mails.POISON.items(), *hostile_mails.BOMBS.items()]:
        raw = make("bench")
        started = time.perf_counter()
        result = app.pipeline.ingest(raw)
        seconds = time.perf_counter() - started
        slowest = max(slowest, seconds)
        del raw
        gc.collect()
        print(f"{name:<24} {len(make('bench')):>10} {seconds:>8.3f} {current_rss() / MB:>7.0f} "
              f"{peak_rss() / MB:>8.0f}  {result.action} {result.detail[:60]}")
    ratio = None
    if not args.skip_big:
        raw = hostile_mails.big_attachment("bench", args.big_mb * MB)
        size = len(raw)
        gc.collect()
        before, peak_before = current_rss(), peak_rss()
        started = time.perf_counter()
        result = app.pipeline.ingest(raw)
        seconds = time.perf_counter() - started
        slowest = max(slowest, seconds)
        cost = max(peak_rss(), peak_before) - before
        ratio = cost / size
        print(f"{'big-attachment':<24} {size:>10} {seconds:>8.3f} {current_rss() / MB:>7.0f} "
              f"{peak_rss() / MB:>8.0f}  {result.action} {result.detail[:60]}")
        print(f"big mail: {size / MB:.1f} MB, peak above the resident memory before it {cost / MB:.0f} MB "
              f"= {ratio:.2f}x its size (target < 3x; the mail's own bytes count as 1x)")
    print(f"slowest mail {slowest:.3f} s (target < 1 s); peak RSS of the run {peak_rss() / MB:.0f} MB "
          f"(target < 300 MB); load {os.getloadavg()}")
    app.store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
