"""``hypercare kb draft [--out DIR]`` and ``hypercare export tickets --format csv|json [--status open]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.errors import OutputNotWritable
from core.private_files import private_dir, write_private
from handover.export import FORMATS, export_rows, to_csv_text, to_json_text
from handover.kb import articles, collect_topics, render_index, render_topic
from tickets.models import STATUSES


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    kb = sub.add_parser("kb", parents=[common], help="knowledge-base drafts from resolved tickets")
    kbsub = kb.add_subparsers(dest="kb_command", required=True)
    p = kbsub.add_parser("draft", parents=[common], help="one Markdown draft per shared topic word")
    p.add_argument("--out", metavar="DIR", help="write <topic>.md files and index.md here (default: print)")
    p.set_defaults(handler=cmd_kb_draft)

    export = sub.add_parser("export", parents=[common], help="export data for the ongoing support tool")
    exsub = export.add_subparsers(dest="export_command", required=True)
    p = exsub.add_parser("tickets", parents=[common], help="tickets with their full history")
    p.add_argument("--format", choices=FORMATS, default="json")
    p.add_argument("--status", choices=("open", *STATUSES), help="only open tickets (or one status)")
    p.add_argument("--out", metavar="FILE", help="write here (default: print)")
    p.set_defaults(handler=cmd_export_tickets)


def ticket_url(app: Any) -> str:
    d = app.config.dashboard
    return f"http://{d.host}:{d.port}/tickets/{{key}}"


def cmd_kb_draft(app: Any, args: argparse.Namespace) -> int:
    with app.store.read() as session:
        topics = collect_topics(session, app.config)
    url = ticket_url(app)
    if not args.out:
        for topic in articles(topics):
            print(render_topic(topic, url), file=app.out)
        print(f"{len(articles(topics))} topic(s) from {sum(len(t.tickets) for t in topics)} resolved ticket(s)",
              file=app.out)
        return 0
    out = Path(args.out)
    try:
        private_dir(out)
        for topic in articles(topics):
            write_private(out / f"{topic.slug}.md", render_topic(topic, url))
        write_private(out / "index.md", render_index(topics, url))
    except OSError as exc:
        raise OutputNotWritable(
            f"--out {out}: cannot write ({exc.strerror or exc}); choose a writable folder") from None
    print(f"{len(articles(topics))} draft(s) written to {out}", file=app.out)
    return 0


def cmd_export_tickets(app: Any, args: argparse.Namespace) -> int:
    with app.store.read() as session:
        rows = export_rows(session, args.status)
    text = to_csv_text(rows) if args.format == "csv" else to_json_text(rows)
    out = app.write_output(args.out, text)
    if out is None:
        return 0
    print(f"{len(rows)} ticket(s) exported to {out} ({args.format})", file=app.out)
    return 0
