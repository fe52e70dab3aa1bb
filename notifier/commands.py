"""CLI commands that drive the outbox: ``outbox list|flush|retry``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import select

from tickets.models import OutboxItem


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
    with app.store.read() as session:
        query = select(OutboxItem).order_by(OutboxItem.id)
        if args.status:
            query = query.where(OutboxItem.status == args.status)
        items = list(session.scalars(query))
    rows = [
        {"id": i.id, "kind": i.kind, "status": i.status, "attempts": i.attempts, "to": i.recipients,
         "suppressed": i.suppressed, "subject": i.subject, "message_id": i.message_id,
         "created_at": i.created_at.isoformat(), "next_attempt_at": i.next_attempt_at.isoformat(),
         "sent_at": i.sent_at.isoformat() if i.sent_at else None, "last_error": i.last_error}
        for i in items
    ]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False), file=app.out)
        return 0
    print(f"{'ID':>5} {'KIND':<14} {'STATUS':<10} {'TRIES':>5}  TO / SUBJECT / LAST ERROR", file=app.out)
    for r in rows:
        print(f"{r['id']:>5} {r['kind']:<14} {r['status']:<10} {r['attempts']:>5}  {', '.join(r['to'])}  "
              f"{r['subject'][:50]}", file=app.out)
        if r["suppressed"]:
            print(f"{'':>38}suppressed (bouncing): {', '.join(r['suppressed'])}", file=app.out)
        if r["last_error"]:
            print(f"{'':>38}last error: {r['last_error'][:120]}", file=app.out)
    print(f"{len(rows)} item(s)", file=app.out)
    return 0


def cmd_flush(app: Any, args: argparse.Namespace) -> int:
    report = app.outbox.flush(app.transport())
    print(f"sent {report.sent}, retry later {report.retried}, dead {report.dead}, "
          f"suppressed {report.suppressed}", file=app.out)
    return 0


class UnknownOutboxItem(Exception):
    """``outbox retry`` was given an id that does not exist or was already sent."""


def cmd_retry(app: Any, args: argparse.Namespace) -> int:
    if not app.outbox.retry(args.id):
        raise UnknownOutboxItem(f"no unsent outbox item {args.id}; see 'hypercare outbox list'")
    print(f"outbox item {args.id} queued again", file=app.out)
    return 0
