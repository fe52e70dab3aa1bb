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
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from dovecot import PASSWORD, PASSWORD_ENV, Dovecot  # noqa: E402

SUBJECTS = (
    "Cannot save opportunity", "Report export to Excel fails", "Dropdown value missing in Lead form",
    "Login takes very long", "Sync with ERP shows errors", "Please add user to sales team",
    "Quote PDF has wrong logo", "Dashboard numbers look wrong", "Outlook plugin does not load",
    "Email to case not creating cases",
)
BODIES = (
    "Hello support,\n\nsince this morning {what}. I tried twice and logged out and in again.\n"
    "Could you have a look? Record {n} is an example.\n\nThanks\n{name}\n",
    "Hi,\n\n{what} for me and two colleagues. It worked last week.\n\nBest regards\n{name}\n"
    "Sales Operations\n",
)


def generate(count: int, senders: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    mails = []
    for i in range(count):
        who = i % senders
        msg = EmailMessage()
        msg["From"] = f"User {who} <user{who}@customer{who % 7}.example>"
        msg["To"] = "support@example.com"
        subject = SUBJECTS[rng.randrange(len(SUBJECTS))]
        msg["Subject"] = f"{subject} ({i})"
        msg["Message-ID"] = f"<bench-{i}-{rng.getrandbits(48):x}@customer{who % 7}.example>"
        msg["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
        msg.set_content(BODIES[i % 2].format(what=subject.lower(), n=rng.randrange(10**6), name=f"User {who}"))
        mails.append(msg.as_bytes())
    return mails


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


def run_poll(workdir: Path, profile: str | None) -> tuple[int, float, int, str]:
    """``hypercare poll --once`` in its own process: (exit code, seconds, peak RSS KiB, output)."""
    command = [sys.executable]
    if profile:
        command += ["-m", "cProfile", "-o", profile]
    command += [str(ROOT / "service.py"), "poll", "--once"]
    env = {**os.environ, PASSWORD_ENV: PASSWORD, "HYPERCARE_CONFIG": str(workdir / "hypercare.toml")}
    started = time.perf_counter()
    with open(workdir / "poll.log", "wb") as log:  # the per-message INFO lines, as in production
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=log)
    output = process.stdout.read().decode() if process.stdout else ""
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, seconds, int(usage.ru_maxrss), output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--flood-limit", type=int, default=10, help="[intake] flood_per_hour (default 10)")
    parser.add_argument("--database", default="", help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--profile", default="", help="write a cProfile of the poll process to this file")
    args = parser.parse_args()

    server = Dovecot(user="support")
    workdir = Path(tempfile.mkdtemp(prefix="hc-bench-"))
    try:
        server.start()
        t0 = time.perf_counter()
        mails = generate(args.messages, args.senders)
        server.deliver(mails)
        size = sum(len(m) for m in mails)
        del mails
        print(f"mailbox: {args.messages} messages ({size / 1e6:.1f} MB) from {args.senders} senders, "
              f"delivered in {time.perf_counter() - t0:.1f}s")
        fetched, seconds = raw_fetch_rate(server, args.batch_size)
        print(f"imapclient alone : {fetched} fetched in {seconds:.2f}s = {fetched / seconds:,.0f} msg/s")
        database = args.database or f"sqlite:///{workdir / 'bench.db'}"
        (workdir / "hypercare.toml").write_text(
            f'[support]\naddress = "support@example.com"\n[database]\nurl = "{database}"\n'
            f'[intake]\nflood_per_hour = {args.flood_limit}\n'
            f'[imap]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\nusername = "support"\n'
            f'password_env = "{PASSWORD_ENV}"\nbatch_size = {args.batch_size}\n')
        code, seconds, peak_kib, output = run_poll(workdir, args.profile or None)
        print(output.strip())
        left = len(server.uids("INBOX"))
        print(f"hypercare poll --once: exit {code}, {args.messages} messages in {seconds:.2f}s = "
              f"{args.messages / seconds:,.0f} msg/s end to end (process start included), "
              f"peak RSS {peak_kib / 1024:.0f} MB, {left} left in INBOX")
        return 0 if code == 0 and left == 0 else 1
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
