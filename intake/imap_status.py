"""``hypercare status``: the health an operator checks first, built from independent sections.

Why sections: each part of the service (database, mailboxes, outbox, scheduled sends)
reports its own health; one failing part must not hide the others, and a new part
(the digest schedule) plugs in by adding one function to ``STATUS_SECTIONS``.
Status reads only the database, never the IMAP server or the relay, so it is fast and
safe to run from cron or a monitoring probe; mailbox health is what the poller last
recorded.  Exit code 0 when every section is ok, 1 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from intake.imap_connect import mailbox_key
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
    return _safe(lambda: app.store.ping() or True)


def _safe(fn: Callable[[], Any]) -> bool:
    try:
        return bool(fn())
    except (DatabaseUnavailable, SQLAlchemyError):
        return False


def mailbox_section(app: Any) -> Section:
    if not _database_ok(app):
        return Section("mailboxes", False, [], ["mailboxes: unknown (database unreachable)"])
    with app.store.read() as session:
        states = {s.mailbox: s for s in session.scalars(select(ImapState).order_by(ImapState.mailbox))}
    configured = mailbox_key(app.config.imap) if app.config.imap is not None else None
    rows: list[dict[str, Any]] = []
    for key in sorted({*states, *([configured] if configured else [])}):
        state = states.get(key)
        success = state.last_success_at if state else None
        error_at = state.last_error_at if state else None
        healthy = success is not None and (error_at is None or success >= error_at)
        rows.append({
            "mailbox": key, "configured": key == configured, "ok": healthy,
            "last_success_at": _iso(success), "waiting": state.waiting if state else None,
            "last_error": state.last_error if state else None, "last_error_at": _iso(error_at),
            "uidvalidity": state.uidvalidity if state else None, "last_uid": state.last_uid if state else None,
        })
    lines = ["mailboxes: none configured ([imap] section absent)"] if not rows else []
    for row in rows:
        seen = row["last_success_at"] or "never"
        waiting = "?" if row["waiting"] is None else row["waiting"]
        lines.append(f"mailbox {row['mailbox']}: {'ok' if row['ok'] else 'FAILING'}; last successful poll {seen}; "
                     f"{waiting} waiting")
        if row["last_error"]:
            lines.append(f"  last error {row['last_error_at']}: {row['last_error']}")
    relevant = [r for r in rows if r["configured"]]
    return Section("mailboxes", all(r["ok"] for r in relevant), rows, lines)


def outbox_section(app: Any) -> Section:
    if not _database_ok(app):
        return Section("outbox", False, {}, ["outbox: unknown (database unreachable)"])
    with app.store.read() as session:
        counts = dict(session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all())
        oldest = session.scalar(select(func.min(OutboxItem.created_at))
                                .where(OutboxItem.status.in_(("pending", "sending"))))
        dead = session.execute(select(OutboxItem.id, OutboxItem.kind, OutboxItem.recipients, OutboxItem.last_error)
                               .where(OutboxItem.status == "dead").order_by(OutboxItem.id.desc()).limit(20)).all()
    pending = int(counts.get("pending", 0)) + int(counts.get("sending", 0))
    dead_total = int(counts.get("dead", 0))
    data = {"pending": pending, "dead": dead_total, "sent": int(counts.get("sent", 0)),
            "oldest_pending_at": _iso(oldest),
            "dead_items": [{"id": i, "kind": k, "recipients": r, "last_error": e} for i, k, r, e in dead]}
    lines = [f"outbox: {pending} pending" + (f" (oldest {data['oldest_pending_at']})" if oldest else "")
             + f", {dead_total} dead"]
    for item in data["dead_items"]:
        lines.append(f"  dead #{item['id']} {item['kind']} to {', '.join(item['recipients'])}: {item['last_error']}")
    if dead_total:
        lines.append("  see 'hypercare outbox list' and 'hypercare outbox retry ID'")
    return Section("outbox", dead_total == 0, data, lines)


# The order is the order printed.  Next scheduled sends (digests, weekly summary): the digest
# engineer adds its ``fn(app) -> Section`` here, e.g. ``notifier.schedule_status.schedule_section``.
def _schedule_section(app: Any) -> Section:
    from notifier.digest_commands import schedule_section

    return schedule_section(app)  # type: ignore[no-any-return]


STATUS_SECTIONS: tuple[StatusSection, ...] = (database_section, mailbox_section, outbox_section, _schedule_section)


def collect(app: Any, sections: tuple[StatusSection, ...] = STATUS_SECTIONS) -> list[Section]:
    return [section(app) for section in sections]
