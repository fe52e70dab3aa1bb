"""Benchmark: where the time of a ``hypercare poll --once`` drain goes, by process, thread and stage.

Usage (from the project root, Dovecot installed):

    .venv/bin/python bench/drain_budget.py [--messages 5000] [--rounds 3] [--baseline DIR] [--mails corpus]

Why: ``bench/ingest_imap.py`` gives the drain's rate as a ratio to the raw fetch; when that ratio does not
move, this says why.  Each round fills a private Dovecot with the same generated mails as that script (every
mail a new ticket with an acknowledgement), then runs ``poll --once`` of a tree on a fresh SQLite database in
its own process, with timers put around a few of its functions from outside (this file, run as the poll
process with ``--child``).  It prints, per round:

- the start (from the parent's launch of the process until it begins storing the first batch) and the
  drain (the rest, until the process has exited);
- CPU seconds of the storing process's main thread, of its other threads (the IMAP thread, the pool's
  result thread), of the parse worker, and of the rest of the machine (Dovecot serving FETCH and MOVE,
  from ``/proc/stat``), against the core-seconds the two cores had;
- the storing thread's stages: storing (``IngestPipeline.ingest_batch``, wall and CPU), of it the
  commits of the stored batches (the fsync), the parts it took back from the worker (mails, wall, CPU),
  and its waits for the worker.

``--mails corpus`` drains the real mails of the shared corpus instead (``HYPERCARE_CORPUS``, else
``../shared/corpus``; read in place, each file once, at most ``--messages``): replies, bounces, HTML and
attachments, whose words the classifier has not seen.

Read it as a budget: when the cores are busy for the whole drain, only less CPU per mail (or a shorter
start) makes the drain faster; when they idle, a wait is the lever.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("HYPERCARE_CORPUS") or ROOT.parent / "shared" / "corpus")
RESULT_ENV = "HYPERCARE_DRAIN_BUDGET_OUT"
LAUNCH_ENV = "HYPERCARE_DRAIN_BUDGET_LAUNCHED"  # the parent's perf_counter (CLOCK_MONOTONIC) at the launch


# --- the poll process (--child) --------------------------------------------------------------------


def run_child(tree: Path) -> None:
    """``poll --once`` of *tree* in this process, its main thread's stages timed; the figures go to a JSON file."""
    launched = float(os.environ[LAUNCH_ENV])
    started_cpu, started_main = time.process_time(), time.thread_time()  # this file's own start left out
    sys.path.insert(0, str(tree))
    wall: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    marks: dict[str, float] = {}
    taken_back = {"mails": 0}  # ParsePool.taken_back, read after each part taken back
    active: set[str] = set()
    main = threading.main_thread()

    def timed(owner: Any, name: str, stage: str, *, within: str = "",
              after: Callable[[Any], None] | None = None) -> None:
        """Time *stage* around ``owner.name`` on the main thread (only inside *within*, when given)."""
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not main or (within and within not in active):
                return original(*args, **kwargs)
            marks.setdefault(stage, time.perf_counter())
            active.add(stage)
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                active.discard(stage)
                wall[stage] += time.perf_counter() - t0
                cpu[stage] += time.thread_time() - c0
                if after is not None:
                    after(args[0] if args else None)

        setattr(owner, name, wrapper)

    from sqlalchemy.engine.default import DefaultDialect

    from intake import parse_pool, pipeline
    from intake.receive import imap_poller

    def count_taken(pool: Any) -> None:
        taken_back["mails"] = pool.taken_back

    timed(pipeline.IngestPipeline, "ingest_batch", "storing")
    timed(DefaultDialect, "do_commit", "commits", within="storing")
    timed(parse_pool.ParsePool, "_take_one_back", "taking back", after=count_taken)
    timed(imap_poller, "_result", "waiting for the worker")
    sys.argv = [str(tree / "service.py"), "poll", "--once"]
    try:
        runpy.run_path(str(tree / "service.py"), run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the parse worker, reaped by the pool's shutdown
    figures = {
        "exit": code,
        "start": marks.get("storing", time.perf_counter()) - launched,
        "first_asked": marks.get("waiting for the worker", time.perf_counter()) - launched,
        "cpu_process": time.process_time() - started_cpu,
        "cpu_main": time.thread_time() - started_main,
        "cpu_worker": children.ru_utime + children.ru_stime,
        "taken_back": taken_back["mails"],
        "wall": dict(wall),
        "cpu": dict(cpu),
    }
    Path(os.environ[RESULT_ENV]).write_text(json.dumps(figures))
    sys.exit(code)


# --- the benchmark ---------------------------------------------------------------------------------


def busy_core_seconds() -> tuple[float, float]:
    """(busy, total) core-seconds of the whole machine since boot, from /proc/stat (guest time is already in
    user and nice, so only the first eight columns)."""
    values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - values[3] - values[4]) / tick, sum(values) / tick


def one_round(server: Any, tree: Path, args: argparse.Namespace, round_no: int) -> dict[str, Any]:
    """Fill the mailbox, time the raw fetch, then ``poll --once`` of *tree* as this file's ``--child``."""
    from bench_mails import generate
    from dovecot import PASSWORD, PASSWORD_ENV
    from ingest_imap import empty_processed, raw_fetch_rate, write_config

    workdir = Path(tempfile.mkdtemp(prefix="hc-budget-"))
    try:
        args.delivered = server.deliver(generate(args.messages, 50, seed=7 + round_no) if args.mails == "generated"
                                        else corpus_mails(args.messages))
        fetched, seconds = raw_fetch_rate(server, 200)
        write_config(workdir, f"sqlite:///{workdir / 'bench.db'}", server.port, flood_limit=1_000_000,
                     incidents="false", batch_size=200)
        result = workdir / "figures.json"
        env = {**os.environ, PASSWORD_ENV: PASSWORD, "HYPERCARE_CONFIG": str(workdir / "hypercare.toml"),
               RESULT_ENV: str(result)}
        busy0, total0 = busy_core_seconds()
        with open(workdir / "poll.log", "wb") as log:
            env[LAUNCH_ENV] = repr(launched := time.perf_counter())
            child = subprocess.run([sys.executable, __file__, "--child", str(tree)], cwd=workdir, env=env,
                                   stdout=subprocess.DEVNULL, stderr=log, check=False)
            process = time.perf_counter() - launched
        busy1, total1 = busy_core_seconds()
        figures = json.loads(result.read_text()) if result.exists() else {"exit": child.returncode}
        if child.returncode != 0 or figures["exit"] != 0 or server.uids("INBOX"):
            keep = Path(tempfile.mkdtemp(prefix="hc-budget-failed-"))
            shutil.copy(workdir / "poll.log", keep)
            raise SystemExit(f"poll failed (exit {child.returncode}); see {keep / 'poll.log'}")
        figures.update(raw=fetched / seconds, process=process, cpu_machine=busy1 - busy0,
                       core_seconds=total1 - total0)
        return figures
    finally:
        empty_processed(server)
        shutil.rmtree(workdir, ignore_errors=True)


def corpus_mails(limit: int) -> list[bytes]:
    """Up to *limit* files of the shared corpus, in name order (read in place, never copied into the repo)."""
    if not CORPUS.is_dir():
        raise SystemExit(f"--mails corpus: no corpus at {CORPUS}; set HYPERCARE_CORPUS")
    from classify_same import MAX_FILE_BYTES, SUFFIXES  # the corpus files that are mail, as it reads them

    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                   and p.stat().st_size <= MAX_FILE_BYTES)
    return [p.read_bytes() for p in files[:limit]]


def report(label: str, f: dict[str, Any], messages: int) -> None:
    """One round's budget, in four lines."""
    wall, cpu = f["wall"], f["cpu"]
    rate = messages / f["process"]
    others = f["cpu_process"] - f["cpu_main"]
    rest = f["cpu_machine"] - f["cpu_process"] - f["cpu_worker"]
    print(f"[{label}] {rate:,.0f} msg/s = {100 * rate / f['raw']:.2f} % of the raw fetch ({f['raw']:,.0f} msg/s); "
          f"process {f['process']:.2f} s: start {f['start']:.2f} s (the first batch fetched and asked for at "
          f"{f['first_asked']:.2f} s), drain {f['process'] - f['start']:.2f} s")
    print(f"  CPU s: storing main thread {f['cpu_main']:.2f}, its other threads {others:.2f}, parse worker "
          f"{f['cpu_worker']:.2f}, rest of the machine {rest:.2f}; machine busy {f['cpu_machine']:.2f} of "
          f"{f['core_seconds']:.2f} core-s")
    taken = f["taken_back"]
    waited = wall.get("waiting for the worker", 0) - wall.get("taking back", 0)
    print(f"  storing thread: storing {wall.get('storing', 0):.2f} s (CPU {cpu.get('storing', 0):.2f}, "
          f"{1000 * cpu.get('storing', 0) / messages:.3f} ms a mail), of it commits {wall.get('commits', 0):.2f} s; "
          f"took back {taken:.0f} mails in {wall.get('taking back', 0):.2f} s (CPU {cpu.get('taking back', 0):.2f}); "
          f"waited for the worker {waited:.2f} s")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        run_child(Path(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="", metavar="DIR", help="another checkout, in turns with this one")
    parser.add_argument("--mails", choices=("generated", "corpus"), default="generated",
                        help="generated: bench_mails, each a new ticket; corpus: the shared corpus's real mails")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]
    from dovecot import Dovecot
    from ingest_imap import compile_tree, load_average

    trees = [ROOT] + ([Path(args.baseline).resolve()] if args.baseline else [])
    if len(set(trees)) < len(trees):
        parser.error("--baseline is this checkout")
    for tree in trees:
        compile_tree(tree)
    results: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
    server = Dovecot(user="support")
    try:
        server.start()
        for round_no in range(args.rounds):
            for tree in trees:
                print(f"round {round_no}, {tree}; {load_average()}")
                results[tree].append(one_round(server, tree, args, round_no))
                report(str(tree), results[tree][-1], args.delivered)
    finally:
        server.cleanup()
    for tree, rows in results.items():
        ratio = statistics.median(100 * args.delivered / r["process"] / r["raw"] for r in rows)
        start = statistics.median(r["start"] for r in rows)
        print(f"{tree}: median {ratio:.2f} % of the raw fetch; start {start:.2f} s, "
              f"storing CPU {statistics.median(r['cpu']['storing'] for r in rows):.2f} s, "
              f"worker CPU {statistics.median(r['cpu_worker'] for r in rows):.2f} s; {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
