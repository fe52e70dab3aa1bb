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
average.  Target (issue 17): >= 500 mails/s with 8 clients.  Each round first sends the same mails
with the same clients to a bare aiosmtpd sink (answers 250 at once, stores nothing): the ratio to it
is what a shared machine can compare between runs (the clients themselves need about a core).
``--baseline DIR`` runs the same measurement in each round with the daemon of another checkout (e.g.
``git archive`` of the commit before a change), so before and after come from one run; ``--rounds``
interleaves rounds and prints medians.
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


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU of *pid* (and of its children: the parse worker), from /proc; 0 where unreadable."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir() if children else ():
            for child in (task / "children").read_text().split():
                total += cpu_seconds(int(child))
    except (OSError, ValueError, IndexError):
        pass
    return total


def send_share(port: int, mails: list[bytes], latencies: list[float], errors: list[str]) -> None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for raw in mails:
                started = time.perf_counter()
                smtp.sendmail("bench@customer.example", ["support@example.com"], raw)
                latencies.append(time.perf_counter() - started)
    except (OSError, smtplib.SMTPException) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller

class Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 accepted"

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), decode_data=False)
controller.start()
print("sink ready", flush=True)
sys.stdin.read()
controller.stop()
"""


def send_all(args: argparse.Namespace, port: int, mails: list[bytes], label: str) -> dict[str, float]:
    """*clients* threads, one SMTP connection each, send their share; rate and latency percentiles."""
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
    print(f"  {label}: {len(latencies)} of {len(mails)} mails accepted by {args.clients} clients in {seconds:.2f}s = "
          f"{rate:,.0f} mails/s; latency p50 {pct(0.5):.0f} ms, p95 {pct(0.95):.0f} ms, max {pct(1.0):.0f} ms, "
          f"mean {statistics.fmean(ordered) * 1000 if ordered else 0:.0f} ms")
    if errors:
        print(f"  errors: {len(errors)}, first: {errors[0]}")
    ok = not errors and len(latencies) == len(mails)
    return {"rate": rate if ok else 0.0, "p50": pct(0.5), "p95": pct(0.95)}


def measure_sink(args: argparse.Namespace, mails: list[bytes]) -> dict[str, float]:
    """The same clients against a bare aiosmtpd that answers 250 at once: what this machine allows now."""
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        if not (sink.stdout and b"sink ready" in sink.stdout.readline()):
            raise SystemExit("the aiosmtpd sink did not start")
        return send_all(args, port, mails, "bare aiosmtpd sink")
    finally:
        sink.kill()
        sink.wait()


def measure(args: argparse.Namespace, tree: Path, mails: list[bytes]) -> dict[str, float]:
    """One daemon of *tree* on a fresh database, *clients* sessions; rate, latency, peak RSS."""
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
    log = open(workdir / "run.log", "wb")  # closed in finally
    daemon = subprocess.Popen([sys.executable, str(tree / "service.py"), "run"], cwd=workdir, env=env,
                              stdout=subprocess.PIPE, stderr=log)
    try:
        line = daemon.stdout.readline().decode() if daemon.stdout else ""
        if "hypercare running" not in line:
            raise SystemExit(f"hypercare run did not start: {line!r}; see {workdir / 'run.log'}")
        label = "hypercare run" + ("" if tree == ROOT else f" @ {tree}")
        cpu_before, own_before = cpu_seconds(daemon.pid), cpu_seconds(daemon.pid, children=False)
        figures = send_all(args, port, mails, f"{label} ({args.backend})")
        figures["cpu"] = 1000 * (cpu_seconds(daemon.pid) - cpu_before) / len(mails)
        figures["own"] = 1000 * (cpu_seconds(daemon.pid, children=False) - own_before) / len(mails)
        figures["rss"] = peak_rss_mb(daemon.pid)
        print(f"    daemon CPU {figures['cpu']:.2f} ms per mail, of it {figures['own']:.2f} ms in the daemon's own "
              f"process (the rest: its parse worker), peak RSS {figures['rss']:.0f} MB; {load_average()}")
        return figures
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        if drop is not None:
            drop()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians at the end")
    parser.add_argument("--incidents", choices=("on", "off"), default="off",
                        help="[incidents] grouping (default off: the generated subjects repeat, see ingest_imap.py)")
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--postgres", default=os.environ.get("HYPERCARE_TEST_DATABASE_URL", ""))
    parser.add_argument("--baseline", default="", metavar="DIR", help="another checkout, measured in each round too")
    args = parser.parse_args()
    trees = [ROOT] + ([Path(args.baseline).resolve()] if args.baseline else [])
    rows: dict[str, list[dict[str, float]]] = {"sink": [], **{str(tree): [] for tree in trees}}
    for round_no in range(args.rounds):
        mails = generate(args.messages, args.senders, seed=11 + round_no)
        print(f"[round {round_no}] {args.messages} mails, {args.clients} clients; {load_average()}")
        sink = measure_sink(args, mails)
        rows["sink"].append(sink)
        for tree in trees:
            figures = measure(args, tree, mails)
            figures["ratio"] = figures["rate"] / sink["rate"] if sink["rate"] else 0.0
            print(f"    ratio to the bare sink in this round: {100 * figures['ratio']:.1f} %")
            rows[str(tree)].append(figures)
    print(f"summary ({args.messages} mails, {args.clients} clients, {args.rounds} round(s), {args.backend}); "
          f"{load_average()}")
    for name, figures in rows.items():
        ratios = ", ".join(f"{100 * f['ratio']:.1f}" for f in figures if "ratio" in f)
        print(f"  {name:28s} median {median([f['rate'] for f in figures]):,.0f} mails/s, p50 "
              f"{median([f['p50'] for f in figures]):.0f} ms, p95 {median([f['p95'] for f in figures]):.0f} ms"
              + (f", ratio to the sink median {100 * median([f['ratio'] for f in figures]):.1f} % (all: {ratios}),"
                 f" daemon CPU median {median([f['cpu'] for f in figures]):.2f} ms/mail"
                 f" ({median([f['own'] for f in figures]):.2f} in its own process),"
                 f" peak RSS max {max(f['rss'] for f in figures):.0f} MB" if ratios else ""))
    return 0 if all(f["rate"] for figures in rows.values() for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
