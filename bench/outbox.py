"""Outbox and digest figures: delivery rate against a bare smtplib loop, digest render time at 100k tickets.

Usage::

    .venv/bin/python bench/outbox.py [--messages 2000] [--tickets 100000] [--db URL] [--rounds 5] [--chunk 200]

1. ``N`` messages are queued in the outbox and flushed to a local aiosmtpd sink (the
   real path: claim, bounce check, send over one connection, one commit per message);
   beside it, the same bytes through a bare ``smtplib`` loop over one connection.
   Target: the outbox within 2x of the bare loop.  Each round runs both, one after the other; the
   figures printed are the medians over the rounds, the ratio the median of each round's own ratio.
2. ``T`` tickets over four weeks are bulk-inserted, then the daily status (and, for
   information, the weekly summary and exit report) are rendered as of day 28.
   Target: the daily status under 1 s (aggregates in SQL).
"""

from __future__ import annotations

import argparse
import io
import random
import smtplib
import socket
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiosmtpd.controller import Controller
from sqlalchemy import select

from app import App
from config import (
    Config,
    DatabaseSettings,
    HypercareSettings,
    NotifierSettings,
    SmtpOutSettings,
    StakeholderSettings,
)
from notifier.digests import for_app
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue
from tickets.clock import FrozenClock
from tickets.models import OutboxItem, Ticket

GO_LIVE = date(2026, 11, 23)


class Sink:
    """Accepts everything, keeps a count: the relay costs the same for both contenders."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_sink(port: int, ready) -> None:  # type: ignore[no-untyped-def]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    time.sleep(3600)


def bench_outbox(workdir: Path, db_url: str, messages: int, rounds: int = 3,
                 team_mail: bool = False) -> tuple[float, float]:
    """Best of *rounds* for each contender, interleaved, against a sink in its own process (like a relay)."""
    outbox_rates, bare_rates = outbox_rounds(workdir, db_url, messages, rounds, team_mail)
    return max(outbox_rates), max(bare_rates)


def outbox_rounds(workdir: Path, db_url: str, messages: int, rounds: int = 3,
                  team_mail: bool = False, chunk: int = 0) -> tuple[list[float], list[float]]:
    """Each round's rate (msg/s) of each contender, interleaved, against a sink in its own process.

    *team_mail*: every row is a team mail whose Reply-To the outbox signs for its recipient when it
    sends it (``ReplyTokens.sign_mail``); the bare loop sends the stored (unsigned) bytes.
    *chunk* > 0: within a round the two take turns every *chunk* messages (each turn on a connection of
    its own), so a load that comes and goes on a shared machine falls on both alike.
    """
    import multiprocessing

    port = free_port()
    ready = multiprocessing.Event()
    sink = multiprocessing.Process(target=_serve_sink, args=(port, ready), daemon=True)
    sink.start()
    ready.wait(10)
    try:
        clock = FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
        config = Config(base_dir=workdir, database=DatabaseSettings(url=db_url),
                        smtp_out=SmtpOutSettings(host="127.0.0.1", port=port),
                        notifier=NotifierSettings(batch_size=100))
        app = App(config, clock, out=io.StringIO(), err=io.StringIO(), environ={})
        outbox_rates, bare_rates = [], []
        turn = chunk if chunk > 0 else messages
        for r in range(rounds):
            with app.store.session() as s:
                for i in range(messages):
                    mail = OutgoingMail(kind="ack", to=[f"user{i}@customer.example"],
                                        subject=f"[HC-{i}] Request {i}", text="We have received your request.\n" * 20,
                                        reply_to=app.tokens.unsigned_address(f"HC-{i}") if team_mail else None)
                    enqueue(s, mail, key=f"bench:{r}:{i}", support=config.support, now=clock.now())
            with app.store.read() as s:
                payloads = [(rc, m) for rc, m in s.execute(
                    select(OutboxItem.recipients, OutboxItem.mime).where(OutboxItem.status == "pending"))]
            outbox_seconds = bare_seconds = 0.0
            sent = 0
            for first in range(0, messages, turn):
                start = time.perf_counter()
                sent += app.outbox.flush(app.transport(), max_items=turn).sent
                outbox_seconds += time.perf_counter() - start
                start = time.perf_counter()
                smtp = smtplib.SMTP("127.0.0.1", port)
                for recipients, data in payloads[first:first + turn]:
                    smtp.sendmail("support@localhost", recipients, data)
                smtp.quit()
                bare_seconds += time.perf_counter() - start
            assert sent == messages, sent
            outbox_rates.append(messages / outbox_seconds)
            bare_rates.append(messages / bare_seconds)
        app.store.dispose()
        return outbox_rates, bare_rates
    finally:
        sink.terminate()


def seed_tickets(app: App, count: int, seed: int = 42) -> None:
    """*count* tickets over 28 days: realistic mix of severities, roles, states and SLA outcomes."""
    rng = random.Random(seed)
    rules = ["outage", "login", "data_loss", "sync_error", "report", "permissions", "ui_typo", "performance"]
    roles = ["crm_admin", "business_analyst", "technical_consultant", "project_manager"]
    start = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    rows = []
    for n in range(1, count + 1):
        created = start + timedelta(seconds=rng.uniform(0, 28 * 86400))
        severity = rng.choices(["P1", "P2", "P3", "P4"], weights=[2, 10, 60, 28])[0]
        target = {"P1": 3600, "P2": 4 * 3600, "P3": 8 * 3600, "P4": 5 * 86400}[severity]
        responded = rng.random() < 0.9
        elapsed = rng.uniform(0.1, 1.3) * target
        resolved = responded and rng.random() < 0.8
        resolved_at = created + timedelta(seconds=elapsed + rng.uniform(600, 3 * 86400)) if resolved else None
        rows.append({
            "number": n, "key": f"HC-{n}", "subject": f"Request {n}", "reporter": f"user{n % 5000}@customer.example",
            "reporter_name": "", "severity": severity, "role": rng.choice(roles),
            "status": "resolved" if resolved else rng.choice(["new", "acknowledged", "in_progress",
                                                              "waiting_on_customer"]),
            "created_at": created, "updated_at": created, "response_due": created + timedelta(seconds=target),
            "first_response_at": created + timedelta(seconds=elapsed) if responded else None,
            "response_met": (elapsed <= target) if responded else None,
            "response_elapsed_seconds": elapsed if responded else None, "resolved_at": resolved_at,
            "reopened_count": 0, "classification": [{"name": r} for r in rng.sample(rules, rng.randint(0, 2))],
            "tags": [],
        })
    with app.store.session() as s:
        for i in range(0, len(rows), 5000):
            s.execute(Ticket.__table__.insert(), rows[i:i + 5000])


def bench_digest(workdir: Path, db_url: str, tickets: int) -> dict[str, float]:
    now = datetime(2026, 12, 21, 7, 0, tzinfo=UTC)  # day 28, 08:00 Berlin
    config = Config(base_dir=workdir, database=DatabaseSettings(url=db_url),
                    hypercare=HypercareSettings(go_live=GO_LIVE, timezone="Europe/Berlin"),
                    stakeholders=StakeholderSettings(daily=("cio@example.com",)))
    app = App(config, FrozenClock(now), out=io.StringIO(), err=io.StringIO(), environ={})
    seed_tickets(app, tickets)
    builder = for_app(app)
    builder.render("status_daily", now)  # warm: page cache, compiled templates
    timings = {}
    for key in ("status_daily", "weekly_summary", "exit_report"):
        best = min(_timed(lambda k=key: builder.render(k, now)) for _ in range(3))
        timings[key] = best
    app.store.dispose()
    return timings


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--db", default="", help="database URL (default: a fresh SQLite file per part)")
    parser.add_argument("--rounds", type=int, default=5, help="outbox rounds (each: outbox, then bare loop)")
    parser.add_argument("--chunk", type=int, default=0,
                        help="take turns every N messages within a round (0: all outbox, then all bare)")
    parser.add_argument("--team-mail", action="store_true",
                        help="team mail: each Reply-To is signed for its recipient at send time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = args.db or f"sqlite:///{work / 'outbox.db'}"
        outbox_rates, bare_rates = outbox_rounds(work, db, args.messages, args.rounds, team_mail=args.team_mail,
                                                 chunk=args.chunk)
        ratios = [bare / outbox for outbox, bare in zip(outbox_rates, bare_rates, strict=True)]
        what = "team mail, signed at send time" if args.team_mail else "acknowledgements"
        for n, (outbox, bare, ratio) in enumerate(zip(outbox_rates, bare_rates, ratios, strict=True), 1):
            print(f"round {n}: outbox {outbox:6.0f} msg/s, bare {bare:6.0f} msg/s, ratio {ratio:.2f}x")
        print(f"outbox flush to aiosmtpd sink: {median(outbox_rates):8.0f} msg/s  (median of {args.rounds}; "
              f"{args.messages} {what}, one connection)")
        print(f"bare smtplib loop, same bytes: {median(bare_rates):8.0f} msg/s  (median)")
        print(f"ratio bare/outbox: {median(ratios):.2f}x median, {min(ratios):.2f}-{max(ratios):.2f}x (target <= 2x)")
        db = args.db or f"sqlite:///{work / 'digest.db'}"
        if args.db:
            print("note: --db given; the digest part adds tickets to that database")
        timings = bench_digest(work, db, args.tickets)
        for key, seconds in timings.items():
            print(f"render {key:<15} over {args.tickets} tickets: {seconds * 1000:7.0f} ms (best of 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
