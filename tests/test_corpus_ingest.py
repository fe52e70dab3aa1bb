"""Every full message of the shared corpus through the whole ingest pipeline (store included).

Proven here, on SQLite with the real pipeline (not IMAP, for speed; the IMAP path hands
the same bytes to the same ``ingest_batch``): ingest never raises; every message ends as
created, threaded, duplicate, ignored with the rule that fired, or quarantined with a
reason; and no bounce, DSN, ARF report, read receipt or auto-reply is ever acknowledged
(which mail is automatic is decided by the same folder/name heuristics as
tests/test_corpus_guards.py).  The per-folder outcome table for docs/corpus.md is printed
by ``python tests/test_corpus_ingest.py [CORPUS_DIR]``.
"""

from __future__ import annotations

import io
import mailbox
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_corpus_guards import expected_automatic, full_messages

from config import Config, DatabaseSettings, IntakeSettings
from tickets.clock import FrozenClock
from tickets.models import OutboxItem

ACTIONS = ("created", "threaded", "duplicate", "ignored", "quarantined")


@dataclass(frozen=True)
class Ingested:
    label: str  # path relative to the corpus root, "#n" for the n-th message of an mbox
    folder: str
    action: str
    detail: str
    automatic: bool
    acknowledged: bool  # an acknowledgement was queued by this message


def messages(root: Path):  # type: ignore[no-untyped-def]
    """(label, folder, automatic, raw) for every full message; mbox files split into their messages."""
    for path in full_messages(root):
        rel = path.relative_to(root).as_posix()
        folder, automatic = rel.rsplit("/", 1)[0], expected_automatic(rel)
        data = path.read_bytes()
        if data.startswith(b"From ") and b"\nFrom " in data:
            box = mailbox.mbox(str(path), create=False)
            try:
                for index, key in enumerate(box.iterkeys()):
                    yield f"{rel}#{index + 1}", folder, automatic, box.get_bytes(key, from_=False)
            finally:
                box.close()
            continue
        yield rel, folder, automatic, data


def ingest_corpus(root: Path, base_dir: Path) -> list[Ingested]:
    from app import App

    # Flood limit off: what is measured here is the guards' verdict, not the per-sender rate.
    config = Config(base_dir=base_dir, database=DatabaseSettings(url=f"sqlite:///{base_dir / 'corpus.db'}"),
                    intake=IntakeSettings(flood_per_hour=10**9, attachments_dir=str(base_dir / "att")))
    from datetime import UTC, datetime

    app = App(config, FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)), out=io.StringIO(),
              err=io.StringIO(), environ={})
    pipeline = app.pipeline

    def acks() -> int:
        with app.store.read() as s:
            return int(s.scalar(select(func.count()).select_from(OutboxItem)  # "ack_known": a report of an incident
                                .where(OutboxItem.kind.in_(("ack", "ack_known")))))

    done: list[Ingested] = []
    try:
        for label, folder, automatic, raw in messages(root):
            before = acks()
            result = pipeline.ingest(raw, "ingest")  # must not raise, whatever the bytes
            done.append(Ingested(label, folder, result.action, result.detail, automatic, acks() > before))
    finally:
        app.store.dispose()
    return done


@pytest.fixture(scope="module")
def ingested(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Ingested]:
    return ingest_corpus(corpus_dir, tmp_path_factory.mktemp("corpus-ingest"))


def test_every_message_ends_in_a_known_outcome_with_a_reason(ingested: list[Ingested]) -> None:
    assert len(ingested) > 1400
    assert {i.action for i in ingested} <= set(ACTIONS)
    assert all(i.detail for i in ingested if i.action in ("ignored", "quarantined"))  # the rule / the reason
    assert Counter(i.action for i in ingested)["created"] > 50  # the human mail does open tickets


def test_no_bounce_report_or_auto_reply_is_ever_acknowledged(ingested: list[Ingested]) -> None:
    automatic = [i for i in ingested if i.automatic]
    assert len(automatic) > 1000
    answered = [(i.label, i.action, i.detail) for i in automatic if i.acknowledged or i.action == "created"]
    assert answered == []


def test_exactly_the_created_tickets_are_acknowledged(ingested: list[Ingested]) -> None:
    acknowledged = [i.label for i in ingested if i.acknowledged]
    created = [i.label for i in ingested if i.action == "created"]
    assert len(created) > 50 and acknowledged == created


def table(results: list[Ingested]) -> str:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for item in results:
        per[item.folder][item.action] += 1
    lines = ["| folder | messages | " + " | ".join(ACTIONS) + " |", "|---|---:|" + "---:|" * len(ACTIONS)]
    total: Counter[str] = Counter()
    for folder in sorted(per):
        total.update(per[folder])
        lines.append(f"| {folder} | {sum(per[folder].values())} | "
                     + " | ".join(str(per[folder][a]) for a in ACTIONS) + " |")
    lines.append(f"| **total** | {sum(total.values())} | " + " | ".join(str(total[a]) for a in ACTIONS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    from conftest import CORPUS_DIR

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_DIR
    with tempfile.TemporaryDirectory() as tmp:
        results = ingest_corpus(root.resolve(), Path(tmp))
    print(table(results))
    rules = Counter(i.detail.split(":")[0] for i in results if i.action == "ignored")
    print("\nignored by rule: " + ", ".join(f"{rule} {n}" for rule, n in rules.most_common()))
    quarantined = [f"{i.label}: {i.detail}" for i in results if i.action == "quarantined"]
    print("quarantined:\n  " + "\n  ".join(quarantined))
