"""``hypercare status [--json]``: the health an operator checks first, built from independent sections.

Why sections: each part of the service (database, mailboxes, relay, outbox, scheduled sends)
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

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from notifier.digests import for_app
from notifier.scheduler import DigestScheduler
from tickets.bouncing import bouncing_people
from tickets.health import database_problem, mailbox_health, outbox_counts, relay_health
from tickets.lifecycle import refusal_counts
from tickets.models import OutboxItem
from tickets.store import DatabaseMisconfigured, DatabaseProbe, DatabaseUnavailable


@dataclass
class Section:
    """One part of the status: ``data`` goes to ``--json`` under ``name``, ``lines`` to the terminal."""

    name: str
    ok: bool
    data: Any
    lines: list[str] = field(default_factory=list)


# fn(app, db) -> Section, *db* the one look of this ``collect`` (None: the section looks itself, for a
# caller that wants one section); must not raise for a broken database.
StatusSection = Callable[[Any, DatabaseProbe | None], Section]


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def look_at_database(app: Any) -> DatabaseProbe:
    """The one look at the database of a ``collect``: the quick probe, then the service's own store.

    Why once: every section needs to know whether it may read, and each look costs a connection
    (up to 2 s on a busy database); before, each section probed again, six looks per ``status``.
    """
    probe = database_problem(app.config)
    if not probe.ok:
        return probe
    try:
        app.store.ping()
    except (DatabaseUnavailable, DatabaseMisconfigured, SQLAlchemyError) as exc:
        return DatabaseProbe("unreachable", " ".join(str(exc).split())[:300])
    return probe


def _readable(app: Any, db: DatabaseProbe | None) -> bool:
    return (db if db is not None else look_at_database(app)).ok


def database_section(app: Any, db: DatabaseProbe | None = None) -> Section:
    """ok, busy (there but locked) or unreachable, within about two seconds either way."""
    probe = db if db is not None else look_at_database(app)
    url = make_url(app.config.database.url).render_as_string(hide_password=True)
    data: dict[str, Any] = {"reachable": probe.state != "unreachable", "state": probe.state, "url": url}
    if probe.ok:
        return Section("database", True, data, [f"database: ok ({url})"])
    data["error"] = probe.detail
    label = "BUSY (locked by another writer, or out of connections)" if probe.state == "busy" else "UNREACHABLE"
    return Section("database", False, data, [f"database: {label} ({url}): {probe.detail}"])


def mailbox_section(app: Any, db: DatabaseProbe | None = None) -> Section:
    if not _readable(app, db):
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


def outbox_section(app: Any, db: DatabaseProbe | None = None) -> Section:
    if not _readable(app, db):
        return Section("outbox", False, {}, ["outbox: unknown (database unreachable)"])
    now = app.clock.now()
    with app.store.read() as session:
        counts = outbox_counts(session, now)
        dead = session.execute(select(OutboxItem.id, OutboxItem.kind, OutboxItem.recipients, OutboxItem.last_error)
                               .where(OutboxItem.status == "dead").order_by(OutboxItem.id.desc()).limit(20)).all()
    problems = counts.problems(now)
    data = {**counts.to_dict(), "oldest_pending_at": _iso(counts.oldest_pending_at), "problems": problems,
            "dead_items": [{"id": i, "kind": k, "recipients": r, "last_error": e} for i, k, r, e in dead]}
    lines = [f"outbox: {counts.pending} pending"
             + (f" (oldest {data['oldest_pending_at']})" if counts.oldest_pending_at else "")
             + f", {counts.dead} dead" + (f", {counts.stuck_claims} stuck claim(s)" if counts.stuck_claims else "")]
    lines += [f"  NEEDS ATTENTION: {problem}" for problem in problems]
    for item in data["dead_items"]:
        lines.append(f"  dead #{item['id']} {item['kind']} to {', '.join(item['recipients'])}: {item['last_error']}")
    if problems:
        lines.append("  see 'hypercare outbox list' and 'hypercare outbox retry ID'")
    return Section("outbox", not problems, data, lines)


def relay_section(app: Any, db: DatabaseProbe | None = None) -> Section:
    """Can the desk speak: the relay's last success, last error and how long it has been unreachable."""
    if not _readable(app, db):
        return Section("relay", False, [], ["relay: unknown (database unreachable)"])
    with app.store.read() as session:
        relays = relay_health(session, app.config, app.clock.now())
    rows = [{**r.to_dict(), **{k: _iso(getattr(r, k)) for k in ("last_success_at", "last_error_at", "failing_since")}}
            for r in relays]
    lines = []
    for relay in relays:
        if not relay.configured and relay.ok:
            continue  # a relay of an earlier config that was fine: history, not news
        state = "ok" if relay.ok else f"FAILING ({relay.problem})"
        lines.append(f"relay {relay.relay}: {state}; last accepted mail {_iso(relay.last_success_at) or 'never'}")
        if relay.last_error and relay.failing_since is not None:
            lines.append(f"  failing since {_iso(relay.failing_since)}: {relay.last_error}")
    return Section("relay", all(r.ok for r in relays if r.configured), rows, lines)


def bouncing_section(app: Any, db: DatabaseProbe | None = None) -> Section:
    """Team members and stakeholders whose address bounced: never suppressed, so shown here instead."""
    if not _readable(app, db):
        return Section("bouncing", False, [], ["bouncing team/stakeholders: unknown (database unreachable)"])
    with app.store.read() as session:
        people = bouncing_people(session, app.config)
    lines = [f"bouncing team/stakeholders: {len(people) or 'none'}"]
    lines += [f"  {p.line()}: {p.reason} (mail to them is still sent)" for p in people]
    return Section("bouncing", not people, [p.to_dict() for p in people], lines)


def schedule_section(app: Any, db: DatabaseProbe | None = None) -> Section:
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


def replies_section(app: Any, db: DatabaseProbe | None = None) -> Section:
    """Refused team replies in the last 24 hours (forged, expired or foreign tokens, unreadable commands).

    Informational (never "needs attention"): a burst of refusals from one sender is someone trying
    addresses they should not hold; each is audited on its ticket as a ``refused`` event.
    """
    if not _readable(app, db):
        return Section("replies", True, {}, ["replies: unknown (database unreachable)"])
    with app.store.read() as session:
        counts = refusal_counts(session, app.clock.now() - timedelta(hours=24))
    line = (f"replies: {counts['refused']} refused in the last 24 h from {counts['senders']} sender(s), "
            f"{counts['answered']} answered, {counts['quiet']} quiet")
    return Section("replies", True, counts, [line])


# The order is the order printed.
STATUS_SECTIONS: tuple[StatusSection, ...] = (database_section, mailbox_section, relay_section, outbox_section,
                                              bouncing_section, replies_section, schedule_section)


def collect(app: Any, sections: tuple[StatusSection, ...] = STATUS_SECTIONS) -> list[Section]:
    """Every section's report, all built on one look at the database (a fresh one each call)."""
    db = look_at_database(app)
    return [section(app, db) for section in sections]


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
