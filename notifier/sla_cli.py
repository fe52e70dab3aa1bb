"""``hypercare sla sweep``: run the escalation sweep now (what every beat of ``run``/``tick`` does)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sla = sub.add_parser("sla", parents=[common], help="the SLA escalation ladder")
    ssub = sla.add_subparsers(dest="sla_command", required=True)
    p = ssub.add_parser("sweep", parents=[common],
                        help="escalate every open ticket that reached an [sla] escalate_at level (once per level), "
                             "and every unresolved one that reached a resolution_escalate_at level")
    p.set_defaults(handler=cmd_sweep)


def cmd_sweep(app: Any, args: argparse.Namespace) -> int:
    errors = 0
    for name, report in (("response", app.escalator.sweep()), ("resolution", app.resolution_ladder.sweep())):
        for item in report.escalated:
            print(item.line(), file=app.out)
        for error in report.errors:
            print(f"error: {error}", file=app.err)
        errors += len(report.errors)
        print(f"{name}: {report.summary()}", file=app.out)
    return 1 if errors else 0


def periodic_job(app: Any) -> list[tuple[str, Any]]:
    """The sweeps as one beat's job (before the outbox, so an escalation leaves on the same beat)."""

    def sweep() -> str:
        return (f"response: {app.escalator.sweep().summary()}; "
                f"resolution: {app.resolution_ladder.sweep().summary()}; triage: {app.triage.sweep()} sent")

    return [("sla", sweep)]
