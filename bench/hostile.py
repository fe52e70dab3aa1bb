"""Benchmark: the bomb and poison mails of issue #12 through the real ingest pipeline.

Usage (from the project root):

    .venv/bin/python bench/hostile.py [--database URL] [--big-mb 47] [--skip-big]

Each generated mail (tests/hostile_mails.py) is ingested by ``IngestPipeline.ingest`` (parse, guards,
dedup, thread, classify, store, the acknowledgement rendered into the outbox) on a fresh database; the
script prints the outcome, the wall time per mail and the process's resident memory (current and peak)
after it.  The big mail runs in a fresh process (reading it from a file), so its memory cost is that
process's peak RSS minus its RSS before reading the mail.  Targets (issue #12): each mail < 1 s, peak
RSS < 300 MB for the whole run, the big mail < 3x its size.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import resource
import subprocess
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
    """The process's high-water RSS (VmHWM): unlike ru_maxrss it is not inherited from the parent at fork."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def big_child(path: Path, url: str) -> int:
    """Ingest one big mail in this fresh process; its cost is the peak RSS above the RSS before reading it."""
    workdir = path.parent
    app = App(Config(base_dir=workdir, database=DatabaseSettings(url=url)),
              FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)), out=io.StringIO(), err=io.StringIO(), environ={})
    app.pipeline.ingest(hostile_mails.nul_bytes("big-warmup"))
    gc.collect()
    before = current_rss()
    raw = path.read_bytes()
    started = time.perf_counter()
    result = app.pipeline.ingest(raw)
    seconds = time.perf_counter() - started
    cost = peak_rss() - before
    print(f"{'big-attachment':<24} {len(raw):>10} {seconds:>8.3f} {current_rss() / MB:>7.0f} {peak_rss() / MB:>8.0f}"
          f"  {result.action} {result.detail[:60]}")
    print(f"big mail: {len(raw) / MB:.1f} MB; peak RSS of its process {cost / MB:.0f} MB above the RSS before "
          f"reading it = {cost / len(raw):.2f}x its size, its own bytes included (target < 3x); seconds={seconds:.3f} "
          f"peak={peak_rss()}")
    app.store.dispose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--big-mb", type=int, default=47, help="size of the big mail in MB (default 47)")
    parser.add_argument("--skip-big", action="store_true", help="leave out the big mail")
    parser.add_argument("--big-child", default="", help=argparse.SUPPRESS)  # internal: one big mail, fresh process
    args = parser.parse_args()
    if args.big_child:
        return big_child(Path(args.big_child), args.database)

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
    desk_peak = peak_rss()  # before generating the big mail: making 47 MB of base64 is not the desk's cost
    if not args.skip_big:
        # The big mail runs in a fresh process that reads it from a file: generating 47 MB of base64
        # here would itself set this process's peak (ru_maxrss) and hide what ingesting it costs.
        path = workdir / "big.eml"
        path.write_bytes(hostile_mails.big_attachment("bench", args.big_mb * MB))
        child = subprocess.run([sys.executable, __file__, "--big-child", str(path), "--database", url],
                               capture_output=True, text=True, check=True)
        print(child.stdout.rstrip())
        slowest = max(slowest, float(child.stdout.split("seconds=")[1].split()[0]))
        desk_peak = max(desk_peak, int(child.stdout.split("peak=")[1].split()[0]))
    print(f"slowest mail {slowest:.3f} s (target < 1 s); peak RSS of the desk's work {desk_peak / MB:.0f} MB "
          f"(the bombs in this process, the big mail in its own; target < 300 MB); load {os.getloadavg()}")
    app.store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
