"""``hypercare status [--json]``: the health an operator checks first, built from independent sections.

Why sections: each part of the service (database, mailboxes, outbox, scheduled sends)
reports its own health; one failing part must not hide the others, and a new part plugs
in by adding one function to ``STATUS_SECTIONS``.  The judgements come from
``tickets.health``, the same ones ``/healthz`` and the dashboard use.  Status reads only
the database, never the IMAP server or the relay, so it is fast and safe to run from cron
or a monitoring probe.  Exit code 0 when every section is ok, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from notifier.digests import for_app
from notifier.scheduler import DigestScheduler
from tickets.health import mailbox_health, outbox_counts
from tickets.lifecycle import refusal_counts
from tickets.models import ImapState, OutboxItem
from tickets.store import DatabaseUnavailable


@dataclass
class Section:
    """One part of the status: ``data`` goes to ``--json`` under ``name``, ``lines`` to the terminal."""

    name: str
    ok: bool
    data: Any
    lines: list[str] = field(default_factory=list)


StatusSection = Callable[[Any], Section]  # fn(app) -> Section; must not raise for a broken database


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def database_section(app: Any) -> Section:
    try:
        store = app.store
        store.ping()
        with store.read() as session:
            session.scalar(select(func.count()).select_from(ImapState))
    except (DatabaseUnavailable, SQLAlchemyError) as exc:
        reason = str(exc).splitlines()[0][:300]
        return Section("database", False, {"reachable": False, "error": reason}, [f"database: UNREACHABLE {reason}"])
    return Section("database", True, {"reachable": True, "url": store.safe_url, "dialect": store.dialect},
                   [f"database: ok ({store.safe_url})"])


def _database_ok(app: Any) -> bool:
    try:
        app.store.ping()
    except (DatabaseUnavailable, SQLAlchemyError):
        return False
    return True


def mailbox_section(app: Any) -> Section:
    if not _database_ok(app):
        return Section("mailboxes", False, [], ["mailboxes: unknown (database unreachable)"])
    with app.store.read() as session:
        boxes = mailbox_health(session, app.config, app.clock.now())
    rows = [{**box.to_dict(), "last_success_at": _iso(box.last_success_at),
             "last_error_at": _iso(box.last_error_at)} for box in boxes]
    lines = ["mailboxes: none configured ([imap] section absent)"] if not rows else []
    for box in boxes:
        seen = _iso(box.last_success_at) or "never"
        waiting = "?" if box.waiting is None else box.waiting
        state = "ok" if box.ok else f"FAILING ({box.problem})"
        lines.append(f"mailbox {box.mailbox}: {state}; last successful poll {seen}; {waiting} waiting")
        if box.last_error:
            lines.append(f"  last error {_iso(box.last_error_at)}: {box.last_error}")
    return Section("mailboxes", all(box.ok for box in boxes if box.configured), rows, lines)


def outbox_section(app: Any) -> Section:
    if not _database_ok(app):
        return Section("outbox", False, {}, ["outbox: unknown (database unreachable)"])
    with app.store.read() as session:
        counts = outbox_counts(session)
        dead = session.execute(select(OutboxItem.id, OutboxItem.kind, OutboxItem.recipients, OutboxItem.last_error)
                               .where(OutboxItem.status == "dead").order_by(OutboxItem.id.desc()).limit(20)).all()
    data = {**counts.to_dict(), "oldest_pending_at": _iso(counts.oldest_pending_at),
            "dead_items": [{"id": i, "kind": k, "recipients": r, "last_error": e} for i, k, r, e in dead]}
    lines = [f"outbox: {counts.pending} pending"
             + (f" (oldest {data['oldest_pending_at']})" if counts.oldest_pending_at else "")
             + f", {counts.dead} dead"]
    for item in data["dead_items"]:
        lines.append(f"  dead #{item['id']} {item['kind']} to {', '.join(item['recipients'])}: {item['last_error']}")
    if counts.dead:
        lines.append("  see 'hypercare outbox list' and 'hypercare outbox retry ID'")
    return Section("outbox", counts.dead == 0, data, lines)


def schedule_section(app: Any) -> Section:
    """The next scheduled stakeholder mail of each kind, in local time."""
    try:
        scheduler = DigestScheduler(app.config, app.store, for_app(app), app.go_live)
        upcoming = scheduler.next_sends(app.clock.now())
    except Exception as exc:  # noqa: BLE001 - status must report, not crash, whatever is broken
        return Section("schedule", False, {"error": str(exc)}, [f"schedule: unknown ({exc})"])
    tz = app.config.hypercare.tz
    data = [{"job": job, "at": at.isoformat()} for job, at in upcoming]
    lines = ["next scheduled sends:"] + [
        f"  {job:<15} {at.astimezone(tz):%a %Y-%m-%d %H:%M %Z}" for job, at in upcoming] or ["  none"]
    if not app.config.stakeholders.daily and not app.config.stakeholders.weekly:
        lines.append("  (no [stakeholders] configured: digests are rendered but not sent)")
    return Section("schedule", True, data, lines)


def replies_section(app: Any) -> Section:
    """Refused team replies in the last 24 hours (forged, expired or foreign tokens, unreadable commands).

    Informational (never "needs attention"): a burst of refusals from one sender is someone trying
    addresses they should not hold; each is audited on its ticket as a ``refused`` event.
    """
    if not _database_ok(app):
        return Section("replies", True, {}, ["replies: unknown (database unreachable)"])
    with app.store.read() as session:
        counts = refusal_counts(session, app.clock.now() - timedelta(hours=24))
    line = (f"replies: {counts['refused']} refused in the last 24 h from {counts['senders']} sender(s), "
            f"{counts['answered']} answered, {counts['quiet']} quiet")
    return Section("replies", True, counts, [line])


# The order is the order printed.
STATUS_SECTIONS: tuple[StatusSection, ...] = (database_section, mailbox_section, outbox_section, replies_section,
                                              schedule_section)


def collect(app: Any, sections: tuple[StatusSection, ...] = STATUS_SECTIONS) -> list[Section]:
    return [section(app) for section in sections]


def cmd_status(app: Any, args: argparse.Namespace) -> int:
    sections = collect(app)
    ok = all(s.ok for s in sections)
    if args.json:
        payload: dict[str, Any] = {"ok": ok}
        payload.update({s.name: s.data for s in sections})
        print(json.dumps(payload, indent=2, ensure_ascii=False, default=str), file=app.out)
    else:
        for section in sections:
            for line in section.lines:
                print(line, file=app.out)
        print("status: ok" if ok else "status: NEEDS ATTENTION", file=app.out)
    return 0 if ok else 1
