"""Benchmark: ``hypercare poll --once`` emptying a private Dovecot, beside the raw imapclient fetch rate.

Usage (from the project root, Dovecot installed):

    .venv/bin/python bench/ingest_imap.py [--messages 10000] [--senders 50] [--batch-size 200]
                                          [--flood-limit N] [--database URL] [--profile FILE]

It delivers N generated support mails from S senders into INBOX of a fresh private Dovecot
(tests/dovecot.py), measures how fast imapclient alone fetches them (BODY.PEEK[], same batch
size, read-only), then runs ``hypercare poll --once`` as a separate process on a fresh
database and reports messages per second and that process's peak resident memory.
With the default flood limit (10 acknowledgements per sender per hour) most mail from 50
senders is recorded as a flood; ``--flood-limit 1000000`` makes every mail open a ticket
with an acknowledgement (the heaviest path).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from bench_mails import generate, request  # noqa: E402
from dovecot import PASSWORD, PASSWORD_ENV, Dovecot  # noqa: E402
from mailkit import made_up_words  # noqa: E402


def raw_fetch_rate(server: Dovecot, batch_size: int) -> tuple[int, float]:
    """imapclient alone: SELECT read-only, SEARCH, FETCH BODY.PEEK[] in batches; nothing else."""
    client = server.client()
    try:
        client.select_folder("INBOX", readonly=True)
        started = time.perf_counter()
        uids = sorted(client.search("ALL"))
        fetched = 0
        for start in range(0, len(uids), batch_size):
            data = client.fetch(uids[start:start + batch_size], ["BODY.PEEK[]"])
            fetched += sum(1 for item in data.values() if b"BODY[]" in item)
        return fetched, time.perf_counter() - started
    finally:
        client.logout()


def write_config(workdir: Path, database: str, imap_port: int, *, flood_limit: int, incidents: str,
                 batch_size: int) -> None:
    """The desk's hypercare.toml for one run: the private Dovecot, *database*, the flood guard and grouping."""
    (workdir / "hypercare.toml").write_text(
        f'[support]\naddress = "support@example.com"\n[database]\nurl = "{database}"\n'
        f'[intake]\nflood_per_hour = {flood_limit}\n[incidents]\nenabled = {incidents}\n'
        f'[imap]\nhost = "127.0.0.1"\nport = {imap_port}\nsecurity = "none"\nusername = "support"\n'
        f'password_env = "{PASSWORD_ENV}"\nbatch_size = {batch_size}\n')


def run_poll(workdir: Path, profile: str | None, tree: Path = ROOT) -> tuple[int, float, int, str, float]:
    """``hypercare poll --once`` of the code in *tree*, in its own process: (exit, seconds, peak RSS KiB, output,
    CPU seconds of the process and its parse worker, which it waits for)."""
    command = [sys.executable]
    if profile:
        command += ["-m", "cProfile", "-o", profile]
    command += [str(tree / "service.py"), "poll", "--once"]
    env = {**os.environ, PASSWORD_ENV: PASSWORD, "HYPERCARE_CONFIG": str(workdir / "hypercare.toml")}
    started = time.perf_counter()
    with open(workdir / "poll.log", "wb") as log:  # the per-message INFO lines, as in production
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=log)
    output = process.stdout.read().decode() if process.stdout else ""
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, seconds, int(usage.ru_maxrss), output, usage.ru_utime + usage.ru_stime


def fresh_postgres(admin_url: str) -> tuple[str, object]:
    """A throwaway database on the server of *admin_url*: (its URL, a callable that drops it)."""
    import uuid

    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"hc_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def empty_processed(server: Dovecot) -> None:
    """Drop what the last round moved away, so every round's server holds the same amount.

    The files are removed from the Maildir folders directly (as a local delivery agent would):
    an IMAP EXPUNGE of thousands of mails timed out on a busy machine.
    """
    for folder in server.maildir.glob(".*"):
        for sub in ("cur", "new"):
            for path in (folder / sub).glob("*"):
                path.unlink(missing_ok=True)


def compile_tree(tree: Path) -> None:
    """Write the tree's bytecode (``__pycache__``) before measuring, as ``pip install`` does for an installed package.

    Why: an editable install under ``PYTHONDONTWRITEBYTECODE=1`` (this machine's environment) never keeps
    bytecode, so every ``poll --once`` compiled the project's modules from source first (the imports of
    ``poll --once``: 1.28 s of CPU with bytecode, 1.59 s without, at load 8), which an installed service
    does not spend.  Stale files are harmless: Python checks each
    source's time stamp and compiles a changed module in memory.  ``--no-compile`` measures without.
    """
    exclude = r"[\\/](\.venv|tests|bench|docs|handover)[\\/]"
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-x", exclude, str(tree)], check=False,
                   stdout=subprocess.DEVNULL)
    print(f"compiled the bytecode of {tree} (python -m compileall; --no-compile to measure without)")


def unrelated(count: int, senders: int, seed: int = 7) -> list[bytes]:
    """``--mails unrelated``: one classifier rule ("broken": defect) and topic, each mail its own problem
    (made-up words no other mail shares): with ``[incidents]`` on, none joins an incident."""
    rng = random.Random(seed)
    word = made_up_words(rng, 5)

    mails = []
    for i in range(count):
        subject = f"{word().capitalize()} {word()}"
        message_id = f"unrelated-{i}-{rng.getrandbits(48):x}"
        mails.append(request(i % senders, subject, message_id, f"The {word()} {word()} is broken.\n"))
    return mails


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def one_round(server: Dovecot, args: argparse.Namespace, backend: str, round_no: int,
              tree: Path = ROOT) -> dict[str, float]:
    """Fill INBOX, time imapclient alone, then ``poll --once`` (of *tree*) on a fresh database of *backend*."""
    workdir = Path(tempfile.mkdtemp(prefix="hc-bench-"))
    drop = None
    try:
        mails = (generate if args.mails == "repeating" else unrelated)(args.messages, args.senders,
                                                                       seed=7 + round_no)
        t0 = time.perf_counter()
        server.deliver(mails)
        size = sum(len(m) for m in mails)
        del mails
        label = backend if tree == ROOT else f"{backend} @ {tree}"
        print(f"[{label} round {round_no}] mailbox: {args.messages} messages ({size / 1e6:.1f} MB) from "
              f"{args.senders} senders, delivered in {time.perf_counter() - t0:.1f}s; {load_average()}")
        fetched, seconds = raw_fetch_rate(server, args.batch_size)
        raw = fetched / seconds
        print(f"  imapclient alone : {fetched} fetched in {seconds:.2f}s = {raw:,.0f} msg/s")
        if backend == "sqlite":
            database = f"sqlite:///{workdir / 'bench.db'}"
        else:
            database, drop = fresh_postgres(args.postgres)
        write_config(workdir, database, server.port, flood_limit=args.flood_limit, incidents=args.incidents,
                     batch_size=args.batch_size)
        code, seconds, peak_kib, output, cpu = run_poll(workdir, args.profile or None, tree)
        print("  " + output.strip())
        left = len(server.uids("INBOX"))
        rate = args.messages / seconds
        print(f"  hypercare poll --once: exit {code}, {args.messages} messages in {seconds:.2f}s = "
              f"{rate:,.0f} msg/s end to end (process start included), peak RSS {peak_kib / 1024:.0f} MB, "
              f"{left} left in INBOX; ratio to raw fetch {100 * rate / raw:.2f} %; "
              f"CPU {1000 * cpu / args.messages:.2f} ms/mail (with its parse worker); {load_average()}")
        if code != 0 or left:
            raise SystemExit(f"poll failed (exit {code}, {left} left); see {workdir / 'poll.log'}")
        return {"raw": raw, "rate": rate, "rss": peak_kib / 1024, "cpu": 1000 * cpu / args.messages}
    finally:
        if drop is not None:
            drop()
        empty_processed(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--flood-limit", type=int, default=10, help="[intake] flood_per_hour (default 10)")
    parser.add_argument("--incidents", choices=("on", "off"), default="off",
                        help="[incidents] grouping (default off: the 10 generated subjects repeat, so with it on "
                             "nearly every mail joins one of ten incidents instead of opening a lone ticket)")
    parser.add_argument("--mails", choices=("repeating", "unrelated"), default="repeating",
                        help="repeating: bench_mails (10 subjects); unrelated: one rule and topic, no shared words")
    parser.add_argument("--backends", default="sqlite",
                        help="comma-separated: sqlite, postgresql (interleaved rounds in one run)")
    parser.add_argument("--postgres", default=os.environ.get("HYPERCARE_TEST_DATABASE_URL", ""),
                        help="admin URL of a PostgreSQL server; each round gets a throwaway database")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", action="append", default=[], metavar="DIR",
                        help="another checkout (e.g. git archive of the commit before a change): each round "
                             "also runs its poll --once on the same mailbox, so before and after share one run; "
                             "may be given more than once (e.g. the commit before and one between)")
    parser.add_argument("--profile", default="", help="write a cProfile of the poll process to this file")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="do not compile the trees' bytecode first (see compile_tree)")
    args = parser.parse_args()
    args.incidents = "true" if args.incidents == "on" else "false"
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "postgresql" in backends and not args.postgres:
        parser.error("--backends postgresql needs --postgres URL (or HYPERCARE_TEST_DATABASE_URL)")

    server = Dovecot(user="support")
    trees = [("", ROOT)] + [(f" ({Path(tree).name})" if len(args.baseline) > 1 else " (baseline)", Path(tree).resolve())
                            for tree in args.baseline]
    if args.compile:
        for _name, tree in trees:
            compile_tree(tree)
    figures: dict[str, list[dict[str, float]]] = {b + name: [] for b in backends for name, _tree in trees}
    try:
        server.start()
        for round_no in range(args.rounds):
            for backend in backends:
                for name, tree in trees:
                    figures[backend + name].append(one_round(server, args, backend, round_no, tree))
    finally:
        server.cleanup()
    print(f"summary ({args.messages} messages, flood limit {args.flood_limit}, {args.rounds} round(s)); "
          f"{load_average()}")
    for backend, rows in figures.items():
        ratios = sorted(100 * r["rate"] / r["raw"] for r in rows)
        rates = sorted(r["rate"] for r in rows)
        cpus = sorted(r["cpu"] for r in rows)
        print(f"  {backend:21s} median {rates[len(rates) // 2]:,.0f} msg/s, ratio to raw fetch "
              f"median {ratios[len(ratios) // 2]:.2f} % (all: {', '.join(f'{x:.2f}' for x in ratios)}), "
              f"CPU median {cpus[len(cpus) // 2]:.2f} ms/mail, peak RSS max {max(r['rss'] for r in rows):.0f} MB")
    for backend in backends:  # this tree against each other one, round by round (same mailbox, same minute)
        for name, _tree in trees[1:]:
            pairs = sorted(a["rate"] / b["rate"] for a, b in zip(figures[backend], figures[backend + name],
                                                                  strict=True))
            print(f"  {backend} this tree / {name.strip()}: {', '.join(f'{x:.2f}x' for x in pairs)} per round, "
                  f"median {pairs[len(pairs) // 2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
