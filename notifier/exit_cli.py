"""``hypercare exit decide go|conditional|no-go --by ADDRESS [TEXT...]``: record the exit decision.

Why a command besides the ``#decision`` reply: the steering committee often decides in a meeting,
and the project manager records it right there; both paths check the same words and the same
role (``tickets.decisions``), store the same audited row and send the same confirmation.
"""

from __future__ import annotations

import argparse
from typing import Any

from notifier.decision_notice import decision_recipients, enqueue_decision_notice
from tickets.decisions import DECISIONS, WORDS, decider, parse_decision, record_decision


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("exit", parents=[common], help="the end of hypercare: record the steering decision")
    actions = p.add_subparsers(dest="exit_action", required=True, metavar="ACTION")
    d = actions.add_parser("decide", parents=[common], help="record go, conditional (with conditions) or no-go",
                           description="Record the exit decision; the stakeholders get a confirmation.")
    d.add_argument("decision", help=f"one of {', '.join(DECISIONS)}")
    d.add_argument("text", nargs="*", help="the conditions (required for conditional) or a comment")
    d.add_argument("--by", required=True, metavar="ADDRESS",
                   help="the project manager deciding (a [[team]] member with the project_manager role)")
    d.set_defaults(handler=cmd_decide)


def cmd_decide(app: Any, args: argparse.Namespace) -> int:
    parsed = parse_decision(" ".join([args.decision, *args.text]))
    member = decider(app.config, args.by)
    now = app.clock.now()
    with app.store.session() as session:
        row = record_decision(session, parsed, member, now, "cli")
        enqueue_decision_notice(session, app.config, app.renderer, row, now)
        to = decision_recipients(app.config, row)
    print(f"exit decision recorded: {WORDS[parsed.decision]} by {member.name} <{member.email}>; "
          f"confirmation queued for {', '.join(to)}", file=app.out)
    return 0
