"""``hypercare digest daily|weekly|exit [--send] [--format text|html]``.

Why print by default: a project manager rehearses tomorrow's status with
``--now`` before any stakeholder sees it; ``--send`` queues exactly what was
printed, under a key of its own so it never collides with the scheduled send.
"""

from __future__ import annotations

import argparse
from typing import Any

from notifier.digests import KINDS, for_app
from notifier.outbox import enqueue


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("digest", parents=[common], help="render a digest, or queue it for the stakeholders",
                       description="Render the daily status, weekly summary or exit report as of now (or --now).")
    p.add_argument("kind", choices=list(KINDS), help="daily status, weekly summary or exit report")
    p.add_argument("--send", action="store_true", help="queue it for the stakeholders instead of only printing")
    p.add_argument("--format", choices=["text", "html"], default="text", help="what to print (default: text)")
    p.set_defaults(handler=cmd_digest)


def cmd_digest(app: Any, args: argparse.Namespace) -> int:
    builder = for_app(app)
    key = KINDS[args.kind]
    now = app.clock.now()
    rendered = builder.render(key, now)
    # Nobody to receive it: one line, exit 2 (before anything is printed or queued).
    mails = builder.mails(key, now, rendered=rendered) if args.send else []
    if args.format == "html":
        print(rendered.html or "", file=app.out)
    else:
        print(f"Subject: {rendered.subject}\n\n{rendered.text}", file=app.out, end="")
    for suffix, mail in mails:  # the exit report: the stakeholders' copy and one signed copy per project manager
        with app.store.session() as session:
            parts = ("digest", key, "manual", now.isoformat(), suffix)
            item = enqueue(session, mail, key=":".join(filter(None, parts)), support=app.config.support, now=now)
            item_id = item.id
        print(f"queued outbox item {item_id} for {', '.join(mail.to)}", file=app.err)
    return 0


JOB_NAME = "digests"


def periodic_job(app: Any) -> list[tuple[str, Any]]:
    """The beat's digest job; built at start, so a broken digest template stops the start (exit 2)."""
    from notifier.scheduler import DigestScheduler

    scheduler = DigestScheduler(app.config, app.store, for_app(app), app.go_live)

    def send_due_digests() -> str:
        return "; ".join(scheduler.run(app.clock.now())) or "nothing due"

    return [(JOB_NAME, send_due_digests)]

