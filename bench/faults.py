"""Fault campaign (issue 11): kill the desk at random and count what the outside world saw.

Usage::

    .venv/bin/python bench/faults.py [--messages 200] [--kills 10] [--mails 60] [--db URL] [--seed 1]

1. **Kill flushes.**  ``messages`` acknowledgements are queued; ``hypercare outbox flush`` runs as a
   real process against a real aiosmtpd relay that takes a little time per message, and is SIGKILLed
   at a random moment ``kills`` times (each restart runs ``--now`` ten minutes later, so the dead
   worker's claims have expired); then one flush runs to the end.  The relay counts copies per
   Message-ID.  Target: every mail delivered, at most one extra copy per kill.
2. **Two instances, slow relay.**  Two workers with a claim shorter than a batch takes share one
   queue (in one process, two threads, two connections).  Target: 0 duplicates.
3. **Kill ``run`` during SMTP intake.**  ``mails`` first mails are sent through the SMTP intake of a
   real ``hypercare run`` that is SIGKILLed at random and restarted; like an MTA, a mail not answered
   250 is sent again.  Target: one ticket per mail, none lost, none twice.

Prints one line per figure; ``--db`` runs parts 1 and 3 on that database (default: SQLite files).
The test ``tests/test_campaign_faults.py`` runs the same functions with a small size.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from config import Config, NotifierSettings, SmtpOutSettings  # noqa: E402
from notifier.mime import OutgoingMail  # noqa: E402
from notifier.outbox import Outbox, enqueue  # noqa: E402
from notifier.transports import SmtpTransport  # noqa: E402
from tickets.clock import SystemClock  # noqa: E402
from tickets.models import OutboxItem, QuarantineItem, Ticket  # noqa: E402
from tickets.store import Store  # noqa: E402

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<([^>]+)>", re.MULTILINE | re.IGNORECASE)


@dataclass
class CountingRelay:
    """An aiosmtpd relay that counts copies per Message-ID and takes ``delay`` seconds per message."""

    delay: float = 0.0
    copies: Counter[str] = field(default_factory=Counter)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        import asyncio

        if self.delay:
            await asyncio.sleep(self.delay)
        found = _MESSAGE_ID.search(envelope.original_content or b"")
        self.copies[found.group(1).decode() if found else "?"] += 1
        return "250 OK"

    def start(self) -> tuple[Controller, int]:
        port = free_port()
        controller = Controller(self, hostname="127.0.0.1", port=port, decode_data=False)
        controller.start()
        return controller, port


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(workdir: Path, db_url: str, relay_port: int, smtp_port: int | None = None) -> Path:
    text = (f'[database]\nurl = "{db_url}"\n[smtp_out]\nhost = "127.0.0.1"\nport = {relay_port}\ntimeout = 10\n'
            f"[dashboard]\nenabled = false\n")
    text += f"[smtp_in]\nport = {smtp_port}\n" if smtp_port else "[smtp_in]\nenabled = false\n"
    path = workdir / "hypercare.toml"
    path.write_text(text)
    return path


def _hypercare(config: Path, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "service.py"), "--config", str(config), *args]


def _queue(store: Store, count: int, now: datetime) -> None:
    support = Config().support
    with store.session() as session:
        for i in range(count):
            mail = OutgoingMail(kind="ack", to=[f"user{i}@customer.example"], subject=f"[HC-{i}] received",
                                text="We have received your request.\n" * 10)
            enqueue(session, mail, key=f"campaign:{i}", support=support, now=now)


def kill_flushes(workdir: Path, db_url: str, messages: int, kills: int, rng: random.Random) -> dict[str, float]:
    """Part 1: SIGKILL ``outbox flush`` at random; count copies per Message-ID at the relay."""
    relay = CountingRelay(delay=0.01)
    controller, port = relay.start()
    try:
        config = _config(workdir, db_url, port)
        subprocess.run(_hypercare(config, "db", "upgrade"), check=True, capture_output=True)
        store = Store(db_url, workdir)
        start = datetime.now(UTC)
        _queue(store, messages, start)
        done = 0
        for kill in range(kills + 1):
            now = (start + timedelta(minutes=10 * kill)).isoformat()
            before = sum(relay.copies.values())
            proc = subprocess.Popen(_hypercare(config, "--now", now, "outbox", "flush"),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if kill < kills:
                # Once it is sending (start-up takes a second or more), kill it at a random moment.
                while proc.poll() is None and sum(relay.copies.values()) == before:
                    time.sleep(0.005)
                time.sleep(rng.uniform(0, 0.4))
                proc.send_signal(signal.SIGKILL)
            proc.wait(300)
            done = kill
        with store.read() as session:
            unsent = session.scalar(select(func.count()).select_from(OutboxItem)
                                    .where(OutboxItem.status != "sent")) or 0
        store.dispose()
    finally:
        controller.stop()
    extra = sum(n - 1 for n in relay.copies.values())
    return {"messages": messages, "kills": done, "delivered": len(relay.copies), "unsent": unsent,
            "extra_copies": extra, "max_copies": max(relay.copies.values(), default=0)}


def two_instances(workdir: Path, messages: int) -> dict[str, float]:
    """Part 2: two workers, a slow relay, a claim shorter than a batch; count duplicates."""
    relay = CountingRelay(delay=0.1)
    controller, port = relay.start()
    store = Store(f"sqlite:///{workdir / 'two.db'}", workdir)
    store.upgrade()
    try:
        _queue(store, messages, SystemClock().now())
        settings = SmtpOutSettings(host="127.0.0.1", port=port, timeout=10)
        workers = [Outbox(store, SystemClock(), NotifierSettings(batch_size=10), claim_seconds=0.6, worker=name)
                   for name in ("first", "second")]

        def work(outbox: Outbox) -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and sum(relay.copies.values()) < messages:
                outbox.flush(SmtpTransport(settings, {}))
                time.sleep(0.05)

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        controller.stop()
        store.dispose()
    return {"messages": messages, "delivered": len(relay.copies),
            "duplicates": sum(n - 1 for n in relay.copies.values())}


def kill_run_during_intake(workdir: Path, db_url: str, mails: int, kills: int,
                           rng: random.Random) -> dict[str, float]:
    """Part 3: SIGKILL ``run`` while mail arrives by SMTP; resend what was not answered 250, like an MTA."""
    relay = CountingRelay()
    controller, relay_port = relay.start()
    smtp_port = free_port()
    config = _config(workdir, db_url, relay_port, smtp_port)
    subprocess.run(_hypercare(config, "db", "upgrade"), check=True, capture_output=True)
    pending = {f"campaign-{i}@customer.example": i for i in range(mails)}
    answered: Counter[str] = Counter()
    tries: Counter[str] = Counter()  # SMTP transactions begun per mail: a kill mid-transaction means a resend
    kills_done = 0
    try:
        while pending:
            proc = subprocess.Popen(_hypercare(config, "run"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert proc.stdout is not None and "hypercare running" in proc.stdout.readline().decode()
            kill_after = rng.randint(1, 5) if kills_done < kills else None
            killed = _send_pending(smtp_port, pending, answered, tries, proc, kill_after, rng)
            kills_done += killed
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    finally:
        controller.stop()
    store = Store(db_url, workdir)
    with store.read() as session:
        tickets = session.scalar(select(func.count()).select_from(Ticket)) or 0
        quarantined = session.scalar(select(func.count()).select_from(QuarantineItem)) or 0
    store.dispose()
    return {"mails": mails, "kills": kills_done, "tickets": tickets, "quarantined": quarantined,
            "answered_250": sum(answered.values()), "resent_after_a_kill": sum(tries.values()) - mails}


def _send_pending(port: int, pending: dict[str, int], answered: Counter[str], tries: Counter[str],
                  proc: subprocess.Popen[bytes], kill_after: int | None, rng: random.Random) -> int:
    """Send each pending mail once; a 250 takes it off the list, anything else leaves it for the next start.

    After *kill_after* answers the desk is SIGKILLed a random few milliseconds later, usually in the
    middle of the next mail's SMTP transaction; returns 1 when it was killed.
    """
    from email.message import EmailMessage

    killer = None
    already = sum(answered.values())
    for message_id, i in sorted(pending.items(), key=lambda kv: kv[1]):
        if kill_after is not None and killer is None and sum(answered.values()) - already >= kill_after:
            killer = threading.Timer(rng.uniform(0, 0.05), proc.send_signal, args=(signal.SIGKILL,))
            killer.start()
        msg = EmailMessage()
        msg["From"] = f"user{i}@customer.example"
        msg["To"] = "support@localhost"
        msg["Subject"] = f"Request {i}"
        msg["Message-ID"] = f"<{message_id}>"
        msg.set_content(f"Problem number {i}.")
        tries[message_id] += 1
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                smtp.sendmail(msg["From"], ["support@localhost"], msg.as_bytes())
        except (OSError, smtplib.SMTPException):
            break  # the desk is down: the rest waits for the next start
        answered[message_id] += 1
        del pending[message_id]
    if killer is not None:
        killer.join()
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--mails", type=int, default=60)
    parser.add_argument("--db", default="", help="database URL for parts 1 and 3 (default: SQLite files)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        one = kill_flushes(_dir(work, "one"), args.db or f"sqlite:///{work / 'one.db'}", args.messages, args.kills, rng)
        print(f"kill flushes: {one}")
        two = two_instances(_dir(work, "two"), max(20, args.messages // 5))
        print(f"two instances, slow relay, short claim: {two}")
        three = kill_run_during_intake(_dir(work, "three"), args.db or f"sqlite:///{work / 'three.db'}",
                                       args.mails, args.kills, rng)
        print(f"kill run during SMTP intake: {three}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    ok = (one["unsent"] == 0 and one["extra_copies"] <= one["kills"] and two["duplicates"] == 0
          and two["delivered"] == two["messages"] and three["tickets"] == three["mails"])
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


def _dir(base: Path, name: str) -> Path:
    path = base / name
    path.mkdir()
    return path


if __name__ == "__main__":
    sys.exit(main())
