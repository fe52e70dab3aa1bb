"""CLI commands that drive the outbox: ``outbox list|flush|retry``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import func, select

from core.errors import UserError
from tickets.models import BouncingRecipient, OutboxItem


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    outbox = sub.add_parser("outbox", parents=[common], help="inspect and drive the outbox")
    osub = outbox.add_subparsers(dest="outbox_command", required=True)
    p = osub.add_parser("list", parents=[common], help="queued, sent and dead mail")
    p.add_argument("--status", choices=["pending", "sending", "sent", "dead", "suppressed"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)
    p = osub.add_parser("flush", parents=[common], help="send everything that is due now")
    p.set_defaults(handler=cmd_flush)
    p = osub.add_parser("retry", parents=[common], help="queue a dead or waiting item again now")
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_retry)


def cmd_list(app: Any, args: argparse.Namespace) -> int:
    """Every row with status, attempts, next try, claim (owner, expiry) and last error; then bouncing addresses."""
    with app.store.read() as session:
        query = select(OutboxItem).order_by(OutboxItem.id)
        if args.status:
            query = query.where(OutboxItem.status == args.status)
        items = list(session.scalars(query))
        counts = dict(session.execute(select(OutboxItem.status, func.count()).group_by(OutboxItem.status)).all())
        bouncing = list(session.scalars(select(BouncingRecipient).order_by(BouncingRecipient.last_at.desc())))
    rows = [
        {"id": i.id, "kind": i.kind, "status": i.status, "attempts": i.attempts, "to": i.recipients,
         "suppressed": i.suppressed, "subject": i.subject, "message_id": i.message_id,
         "created_at": i.created_at.isoformat(), "next_attempt_at": i.next_attempt_at.isoformat(),
         "sent_at": i.sent_at.isoformat() if i.sent_at else None, "last_error": i.last_error,
         "claimed_by": i.claimed_by, "claimed_until": i.claimed_until.isoformat() if i.claimed_until else None}
        for i in items
    ]
    bounces = [{"email": b.email, "count": b.count, "first_at": b.first_at.isoformat(),
                "last_at": b.last_at.isoformat(), "reason": b.reason} for b in bouncing]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False), file=app.out)
        return 0
    tz = app.config.hypercare.tz
    print(f"{'ID':>5} {'KIND':<14} {'STATUS':<10} {'TRIES':>5}  TO / SUBJECT", file=app.out)
    for r, item in zip(rows, items, strict=True):
        print(f"{r['id']:>5} {r['kind']:<14} {r['status']:<10} {r['attempts']:>5}  {', '.join(r['to'])}  "
              f"{r['subject'][:50]}", file=app.out)
        if item.status == "sending" and item.claimed_until is not None:
            print(f"{'':>38}claimed by {item.claimed_by or '?'} until "
                  f"{item.claimed_until.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}", file=app.out)
        if item.status == "pending" and item.attempts:
            print(f"{'':>38}next try: {item.next_attempt_at.astimezone(tz):%Y-%m-%d %H:%M %Z}", file=app.out)
        if r["suppressed"]:
            print(f"{'':>38}suppressed (bouncing): {', '.join(r['suppressed'])}", file=app.out)
        if r["last_error"]:
            print(f"{'':>38}last error: {r['last_error'][:160]}", file=app.out)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(rows)} item(s) listed; all: {summary or 'none'}", file=app.out)
    if bounces:
        print(f"Bouncing recipients (suppressed until they write to us again): {len(bounces)}", file=app.out)
        for b in bounces:
            print(f"  {b['email']}  {b['count']} bounce(s), last {b['last_at'][:16]}  {b['reason'][:100]}",
                  file=app.out)
    return 0


def cmd_flush(app: Any, args: argparse.Namespace) -> int:
    report = app.outbox.flush(app.transport())
    print(f"sent {report.sent}, retry later {report.retried}, dead {report.dead}, "
          f"suppressed {report.suppressed}", file=app.out)
    return 0


class UnknownOutboxItem(UserError):
    """``outbox retry`` was given an id that does not exist or was already sent."""


def cmd_retry(app: Any, args: argparse.Namespace) -> int:
    if not app.outbox.retry(args.id):
        raise UnknownOutboxItem(f"no unsent outbox item {args.id}; see 'hypercare outbox list'")
    print(f"outbox item {args.id} queued again", file=app.out)
    return 0
