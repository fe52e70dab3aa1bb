"""Benchmark: CPU time per new ticket in the storing process and in the parse step, in process.

Usage (from the project root):

    .venv/bin/python bench/store_cpu.py [--messages 2000] [--batch 200] [--baseline DIR] [--database URL]

Generates the mails of ``bench/ingest_imap.py`` (every one a new ticket with an acknowledgement),
parses them as the parse worker does (``parse_mails``; where the code has ``classify_in_worker``
the verdicts are computed there too), then stores them with ``IngestPipeline.ingest_batch`` in
batches of 200 (``--batch``: 8 or 1 for the groups of the SMTP intake with 8 clients) on a fresh
database, and prints CPU milliseconds per mail (``time.process_time``) for each step.  CPU time,
unlike wall time, hardly depends on what else the machine runs, so this
is the figure to compare before and after a change on a shared machine (with the garbage collector
set as ``poll --once`` sets it, where the tree has ``fewer_collections``).  ``--baseline DIR`` runs
the same measurement on another checkout (e.g. ``git archive`` of the commit before) in its own
process, right after this one.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(tree: Path, messages: int, database: str, size: int = 200) -> None:
    sys.path[:0] = [str(tree)]
    bench = Path(__file__).resolve().parent
    sys.path.append(str(bench))
    from bench_mails import generate  # imports nothing of the project

    import config as settings
    import intake.pipeline as pipeline
    from app import App
    from config import Config, DatabaseSettings, IntakeSettings
    from tickets.clock import SystemClock

    tmp = Path(tempfile.mkdtemp(prefix="hc-cpu-"))
    url = database or f"sqlite:///{tmp / 'cpu.db'}"
    # Grouping off where the tree has it: the generated subjects repeat (see bench/ingest_imap.py --incidents).
    grouping = {"incidents": settings.IncidentSettings(enabled=False)} if hasattr(settings, "IncidentSettings") else {}
    config = Config(base_dir=tmp, database=DatabaseSettings(url=url), intake=IntakeSettings(flood_per_hour=10**9),
                    **grouping)
    app = App(config, SystemClock(), out=io.StringIO(), err=io.StringIO())
    app.pipeline  # noqa: B018 - rules, templates, schema before the clock starts
    logging.disable(logging.WARNING)
    mails = [pipeline.RawMail(raw, "imap") for raw in generate(messages, 50)]
    batches = [mails[i:i + size] for i in range(0, len(mails), size)]
    in_worker = hasattr(pipeline, "classify_in_worker")
    if in_worker:
        pipeline.classify_in_worker(app.opener)
    try:  # the collector settings of poll --once and its parse worker, where the tree has them
        from intake.parse_pool import fewer_collections
    except ImportError:
        pass
    else:
        fewer_collections()
    started = time.process_time()
    prepared = [pipeline.parse_mails(b, 10**7, app.clock.now()) if in_worker else pipeline.parse_mails(b, 10**7)
                for b in batches]
    parse_cpu = time.process_time() - started
    started, wall = time.process_time(), time.perf_counter()
    for batch, parsed in zip(batches, prepared, strict=True):
        app.pipeline.ingest_batch(batch, prepared=parsed)
    store_cpu, wall = time.process_time() - started, time.perf_counter() - wall
    step = "parse + classify" if in_worker else "parse"
    print(f"{tree} (batches of {size}): {step} {1000 * parse_cpu / messages:.3f} ms CPU/mail; "
          f"store {1000 * store_cpu / messages:.3f} ms CPU/mail ({1000 * wall / messages:.3f} ms wall); "
          f"total {1000 * (parse_cpu + store_cpu) / messages:.3f}"
          f" ms CPU/mail; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200, help="mails per ingest_batch (SMTP groups: 1-8)")
    parser.add_argument("--baseline", default="", metavar="DIR")
    parser.add_argument("--database", default="", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--tree", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tree:
        measure(Path(args.tree), args.messages, args.database, args.batch)
        return 0
    for tree in [ROOT] + ([Path(args.baseline).resolve()] if args.baseline else []):
        subprocess.run([sys.executable, __file__, "--tree", str(tree), "--messages", str(args.messages),
                        "--batch", str(args.batch), "--database", args.database], check=True, cwd=tempfile.gettempdir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
