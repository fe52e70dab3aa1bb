"""Benchmark: SMTP intake of ``hypercare run`` with parallel clients: mails per second and latency.

Usage (from the project root):

    .venv/bin/python bench/smtp_intake.py [--messages 2000] [--clients 8] [--backend sqlite|postgresql]
                                          [--baseline DIR]

``hypercare run`` starts as its own process on a fresh database (SQLite in a temp dir, or a throwaway
PostgreSQL database on the server of ``--postgres``), SMTP intake on a free port, dashboard off,
the outbox delivering into a Maildir.  *clients* threads each keep one SMTP connection and send
their share of generated support mails (every one a new ticket, as in ``bench/ingest_imap.py``),
timing each ``DATA`` until its 250 (which the intake gives only after the ticket committed).
Prints mails per second over the whole run, p50/p95/max latency, the daemon's peak RSS and the load
average.  Target (issue 17): >= 500 mails/s with 8 clients.  ``--baseline DIR`` runs the same
measurement right after with the daemon of another checkout (e.g. ``git archive`` of the commit
before a change), so before and after come from one run.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench")]

from bench_mails import generate  # noqa: E402
from ingest_imap import fresh_postgres, load_average  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def send_share(port: int, mails: list[bytes], latencies: list[float], errors: list[str]) -> None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for raw in mails:
                started = time.perf_counter()
                smtp.sendmail("bench@customer.example", ["support@example.com"], raw)
                latencies.append(time.perf_counter() - started)
    except (OSError, smtplib.SMTPException) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


def measure(args: argparse.Namespace, tree: Path) -> float:
    """One daemon of *tree* on a fresh database, *clients* sessions; returns mails per second."""
    workdir = Path(tempfile.mkdtemp(prefix="hc-smtp-bench-"))
    drop = None
    database = f"sqlite:///{workdir / 'bench.db'}"
    if args.backend == "postgresql":
        database, drop = fresh_postgres(args.postgres)
    port = free_port()
    (workdir / "hypercare.toml").write_text(
        f'[support]\naddress = "support@example.com"\n[database]\nurl = "{database}"\n'
        f'[intake]\nflood_per_hour = 1000000\n[incidents]\nenabled = {"true" if args.incidents == "on" else "false"}\n'
        f'[smtp_in]\nport = {port}\n[dashboard]\nenabled = false\n')
    env = {**os.environ, "HYPERCARE_CONFIG": str(workdir / "hypercare.toml")}
    mails = generate(args.messages, args.senders, seed=11)
    log = open(workdir / "run.log", "wb")  # closed in finally
    daemon = subprocess.Popen([sys.executable, str(tree / "service.py"), "run"], cwd=workdir, env=env,
                              stdout=subprocess.PIPE, stderr=log)
    try:
        line = daemon.stdout.readline().decode() if daemon.stdout else ""
        if "hypercare running" not in line:
            raise SystemExit(f"hypercare run did not start: {line!r}; see {workdir / 'run.log'}")
        print(f"[{tree}] before: {load_average()}")
        shares = [mails[i::args.clients] for i in range(args.clients)]
        latencies: list[float] = []
        errors: list[str] = []
        threads = [threading.Thread(target=send_share, args=(port, share, latencies, errors)) for share in shares]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        ordered = sorted(latencies)

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

        rate = len(latencies) / seconds
        print(f"  {len(latencies)} of {args.messages} mails accepted by {args.clients} clients in {seconds:.2f}s = "
              f"{rate:,.0f} mails/s ({args.backend}); latency p50 {pct(0.5):.0f} ms, p95 {pct(0.95):.0f} ms, "
              f"max {pct(1.0):.0f} ms, mean {statistics.fmean(ordered) * 1000 if ordered else 0:.0f} ms; "
              f"daemon peak RSS {peak_rss_mb(daemon.pid):.0f} MB; after: {load_average()}")
        if errors:
            print(f"  errors: {len(errors)}, first: {errors[0]}")
        return rate if not errors and len(latencies) == args.messages else 0.0
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        if drop is not None:
            drop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--incidents", choices=("on", "off"), default="off",
                        help="[incidents] grouping (default off: the generated subjects repeat, see ingest_imap.py)")
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--postgres", default=os.environ.get("HYPERCARE_TEST_DATABASE_URL", ""))
    parser.add_argument("--baseline", default="", metavar="DIR", help="another checkout, measured right after")
    args = parser.parse_args()
    rate = measure(args, ROOT)
    if args.baseline:
        before = measure(args, Path(args.baseline).resolve())
        if before:
            print(f"ratio this / baseline: {rate / before:.2f}x")
    return 0 if rate else 1


if __name__ == "__main__":
    sys.exit(main())
