"""``hypercare dashboard [--out FILE] [--json]`` (the served page, written once as a static file) and
``hypercare status [--json]`` (the operator's health check, ``dashboard.status``).

Why: to share the state of hypercare where no one may reach the service (a mail attachment,
a wiki upload).  The static page is the served overview without links to ticket pages and
without the auto-refresh.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from dashboard.pages import overview_html, status_html
from dashboard.public_status import public_status
from dashboard.status import cmd_status
from dashboard.summary import DashboardContext, build_summary, to_json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("dashboard", parents=[common],
                       help="write the dashboard page as a static file (it is also served by 'run')")
    p.add_argument("--out", metavar="FILE", help="write the page here (default: print it)")
    p.add_argument("--json", action="store_true", help="print the /api/summary JSON instead of the page")
    p.add_argument("--status-page", action="store_true",
                   help="the public status page (/status: incidents, no names or addresses) instead")
    p.set_defaults(handler=cmd_dashboard)
    p = sub.add_parser("status", parents=[common],
                       help="health: database, mailboxes, relay, outbox (exit 1 if anything needs attention)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=cmd_status)


def cmd_dashboard(app: Any, args: argparse.Namespace) -> int:
    ctx = DashboardContext(config=app.config, sla=app.sla, go_live=app.go_live, now=app.clock.now())
    if getattr(args, "status_page", False):  # a Namespace built by hand (tests) has no such flag
        return _write_status_page(app, ctx, args)
    with app.store.read() as session:
        summary = build_summary(session, ctx)
        if args.json:
            page = json.dumps(to_json(summary), indent=2, ensure_ascii=False) + "\n"
        else:
            page = overview_html(session, ctx, app.renderer, static=True, summary=summary)
    out = app.write_output(args.out, page)
    if out is None:
        return 0
    print(f"dashboard written to {out} ({summary['open']['total']} open tickets, "
          f"outlook {summary['outlook']['decision']})", file=app.out)
    return 0


def _write_status_page(app: Any, ctx: DashboardContext, args: argparse.Namespace) -> int:
    """``dashboard --status-page [--json] [--out FILE]``: the public page as a static file (same CSP as a meta tag)."""
    with app.store.read() as session:
        data = public_status(session, app.config, ctx.now, app.config.dashboard.status_days)
        page = (json.dumps(to_json(data), indent=2, ensure_ascii=False) + "\n" if args.json
                else status_html(session, ctx, app.renderer, static=True, data=data))
    out = app.write_output(args.out, page)
    if out is not None:
        print(f"status page written to {out} ({len(data['current'])} current, {len(data['resolved'])} resolved "
              f"incident(s))", file=app.out)
    return 0
