"""CLI commands on the ticket store: ``tickets``, ``show``, ``purge``, ``db upgrade``."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from config import SEVERITIES
from core.errors import UserError
from tickets.models import STATUSES, Message, Ticket
from tickets.purge import purge_raw
from tickets.views import list_tickets, ticket_detail, triage_lines


class UnknownTicket(UserError):
    """``show`` was given a key that does not exist."""


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tickets", parents=[common], help="list tickets")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--severity", choices=SEVERITIES)
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(handler=cmd_tickets)

    p = sub.add_parser("show", parents=[common], help="one ticket with messages, events and SLA times")
    p.add_argument("key")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("purge", parents=[common],
                       help="remove raw mail bytes of closed tickets and ignored mail older than a date")
    p.add_argument("--before", required=True, metavar="DATE", help="ISO date or time, e.g. 2026-12-01")
    p.add_argument("--dry-run", action="store_true", help="report what would be removed, change nothing")
    p.set_defaults(handler=cmd_purge)

    db = sub.add_parser("db", parents=[common], help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    p = dbsub.add_parser("upgrade", parents=[common], help="create or migrate the schema")
    p.set_defaults(handler=cmd_db_upgrade)


def cmd_tickets(app: Any, args: argparse.Namespace) -> int:
    with app.store.read() as session:
        rows = list_tickets(session, status=args.status, severity=args.severity)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False), file=app.out)
        return 0
    tz = app.config.hypercare.tz
    print(f"{'KEY':<9} {'SEV':<3} {'STATUS':<20} {'ROLE':<21} {'DUE':<21} {'MSGS':>4}  SUBJECT", file=app.out)
    for row in rows:
        due = _local(row["response_due"], tz)
        print(f"{row['key']:<9} {row['severity']:<3} {row['status']:<20} {row['role']:<21} {due:<21} "
              f"{row['message_count']:>4}  {row['subject'][:60]}", file=app.out)
    print(f"{len(rows)} ticket(s)", file=app.out)
    return 0


def cmd_show(app: Any, args: argparse.Namespace) -> int:
    with app.store.read() as session:
        ticket = session.scalar(
            select(Ticket).where(Ticket.key == args.key.upper()).options(
                selectinload(Ticket.messages).selectinload(Message.attachments),
                selectinload(Ticket.events), selectinload(Ticket.participants))
        )
        if ticket is None:
            raise UnknownTicket(f"no ticket {args.key}; list them with 'hypercare tickets'")
        data = ticket_detail(ticket)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False), file=app.out)
        return 0
    print(render_ticket_text(data, app.config.hypercare.tz), file=app.out)
    return 0


def render_ticket_text(data: dict[str, Any], tz: Any) -> str:
    lines = [
        f"{data['key']}  {data['subject']}",
        f"  reporter:      {data['reporter']}",
        f"  severity:      {data['severity']}    role: {data['role']}    status: {data['status']}",
        f"  created:       {_local(data['created_at'], tz)}",
        f"  response due:  {_local(data['response_due'], tz)}"
        + (f"  (first response {_local(data['first_response_at'], tz)}, "
           f"{'met' if data['response_met'] else 'breached'})" if data["first_response_at"] else ""),
    ]
    if data.get("uncertain"):
        lines.append("  uncertain:     yes; confirm or change with #severity / #assign")
    lines += [f"  {line}" for line in triage_lines(data.get("triage"))]
    incident = data.get("incident")
    if incident:
        lines.append(f"  incident:      {incident['key']} ({incident['reports']} reports, {incident['status']}): "
                     f"{', '.join(incident['tickets'])}")
        lines.append(f"  linked:        {incident['why'] or '-'}")
    lines.append("  why:")
    for hit in data["classification"] or []:
        evidence = ", ".join(f'"{e}"' for e in hit.get("evidence", [])) or "-"
        lines.append(f"    - {hit.get('name')}: {hit.get('description', '')} [{evidence}]")
    lines.append("  messages:")
    for m in data["messages"]:
        lines.append(f"    [{_local(m['received_at'], tz)}] {m['direction']:<3} {m['from']}: {m['subject']}")
        for body_line in (m["body"] or "").strip().splitlines()[:8]:
            lines.append(f"        {body_line}")
    lines.append("  events:")
    for e in data["events"]:
        lines.append(f"    [{_local(e['at'], tz)}] {e['kind']:<18} {e['actor']}: {e['detail']}")
    return "\n".join(lines)


def cmd_db_upgrade(app: Any, args: argparse.Namespace) -> int:
    app.store  # noqa: B018 - building the store upgrades the schema
    print(f"database {app.store.safe_url} is at the newest schema", file=app.out)
    return 0


def _local(value: str | None, tz: Any) -> str:
    if not value:
        return "-"
    from datetime import datetime

    return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")  # the zone, always


class BadPurgeDate(UserError):
    """``purge --before`` was not an ISO date."""


def cmd_purge(app: Any, args: argparse.Namespace) -> int:
    try:
        before = datetime.fromisoformat(args.before)
    except ValueError:
        raise BadPurgeDate(f"--before {args.before!r}: expected an ISO date like 2026-12-01") from None
    if before.tzinfo is None:  # a date or a naive time: local midnight / time of the desk's timezone
        before = before.replace(tzinfo=app.config.hypercare.tz)
    if before > app.clock.now():
        raise BadPurgeDate(f"--before {args.before}: is in the future; purge only what is past")
    with app.store.session() as session:
        report = purge_raw(session, before, dry_run=args.dry_run)
        if args.dry_run:
            session.rollback()
    print(report.line(args.dry_run), file=app.out)
    return 0
