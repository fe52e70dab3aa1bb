"""CLI commands that bring mail in: ``ingest`` and ``quarantine list|replay``."""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import Counter
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from core.errors import EX_TEMPFAIL, UserError
from core.progress import ProgressLine
from intake.pipeline import IngestUnavailable, RawMail
from intake.receive.files import iter_sources
from tickets.models import QuarantineItem
from tickets.store import DatabaseUnavailable

BATCH = 200


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ingest", parents=[common],
                       help="ingest .eml files, folders, mbox, Maildir, or one message on stdin (-)")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or folders; '-' or nothing = stdin")
    p.set_defaults(handler=cmd_ingest)

    q = sub.add_parser("quarantine", parents=[common], help="messages that could not be ingested")
    qsub = q.add_subparsers(dest="quarantine_command", required=True)
    p = qsub.add_parser("list", parents=[common], help="held messages with the reason")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_quarantine_list)
    p = qsub.add_parser("replay", parents=[common], help="ingest a held message again after a fix")
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_quarantine_replay)


def cmd_ingest(app: Any, args: argparse.Namespace) -> int:
    progress = IngestProgress(app.err)
    try:
        _ingest_sources(app, args.paths, progress)
    except (DatabaseUnavailable, OperationalError, IngestUnavailable) as exc:
        # An MTA piping mail to us must keep it queued, not bounce it: temporary, whatever the cause.
        progress.clear()
        print(f"error: {exc}; the message(s) were not stored, try again", file=app.err)
        return EX_TEMPFAIL
    progress.clear()
    if progress.count > 1:
        print(f"total: {progress.describe()}", file=app.out)
    return 0


def _ingest_sources(app: Any, paths: list[str], progress: IngestProgress) -> None:
    """Stream the sources through the pipeline in batches; one line per message on stdout."""
    pipeline = app.pipeline
    sources = iter_sources(paths)
    while chunk := list(itertools.islice(sources, BATCH)):
        results = pipeline.ingest_batch(RawMail(raw, "ingest") for _label, raw in chunk)
        progress.clear()
        for (label, _raw), result in zip(chunk, results, strict=True):
            progress.outcomes[result.action] += 1
            print(f"{label}: {result.line()}", file=app.out)
        app.out.flush()
        progress.draw()


class IngestProgress:
    """On a terminal, one self-overwriting line on stderr (count, rate, outcomes) between batches.

    Why stderr: stdout keeps the contract of one line per message, for scripts and pipes.
    """

    def __init__(self, stream: TextIO) -> None:
        self.line = ProgressLine(stream)
        self.outcomes: Counter[str] = Counter()
        self.started = time.monotonic()

    @property
    def count(self) -> int:
        return sum(self.outcomes.values())

    def describe(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-6)
        counts = ", ".join(f"{n} {action}" for action, n in sorted(self.outcomes.items()))
        return f"{counts} ({self.count} messages in {seconds:.1f}s, {self.count / seconds:.0f} msg/s)"

    def draw(self) -> None:
        self.line.show(f"ingesting: {self.describe()}")

    def clear(self) -> None:
        self.line.clear()


def cmd_quarantine_list(app: Any, args: argparse.Namespace) -> int:
    with app.store.read() as session:
        items = list(session.scalars(select(QuarantineItem).order_by(QuarantineItem.id)))
    rows = [{"id": i.id, "received_at": i.received_at.isoformat(), "source": i.source, "status": i.status,
             "reason": i.reason, "repeats": i.repeats} for i in items]
    if args.json:
        print(json.dumps(rows, indent=2), file=app.out)
        return 0
    for r in rows:
        seen = f" (seen {r['repeats']} times)" if r["repeats"] > 1 else ""
        print(f"{r['id']:>5} {r['received_at'][:19]} {r['source']:<8} {r['status']:<9} {r['reason'][:100]}{seen}",
              file=app.out)
    print(f"{len(rows)} item(s)", file=app.out)
    return 0


class UnknownQuarantineItem(UserError):
    """``quarantine replay`` was given an id that is not held."""


def cmd_quarantine_replay(app: Any, args: argparse.Namespace) -> int:
    with app.store.session() as session:
        item = session.get(QuarantineItem, args.id)
        if item is None or item.status != "held":
            raise UnknownQuarantineItem(f"no held quarantine item {args.id}; see 'hypercare quarantine list'")
        raw = item.raw
    try:
        result = app.pipeline.ingest(raw, "replay", shunt=False)
    except IngestUnavailable as exc:
        print(f"error: {exc}; try again", file=app.err)
        return EX_TEMPFAIL
    if result.action == "quarantined":
        print(f"quarantine item {args.id} still fails: {result.detail}", file=app.out)
        return 1
    with app.store.session() as session:
        held = session.get(QuarantineItem, args.id)
        assert held is not None
        held.status, held.replayed_at = "replayed", app.clock.now()
    print(f"quarantine item {args.id}: {result.line()}", file=app.out)
    return 0
