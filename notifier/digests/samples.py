"""Render every digest template once at start with a full sample, so a typo fails loudly then.

Why a synthetic sample: ``StrictUndefined`` only fires when a template is rendered,
and an empty database would never enter the loops where typos hide; this sample has
one entry in every list, so every line of every digest template is exercised when
the service starts (and in the CLI before printing), not at 08:00 on day 3.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from config import Config
from notifier.digests.builder import DIGEST_TEMPLATES
from notifier.digests.criteria import ExitFacts
from notifier.digests.exit_pack import sample_pack
from notifier.digests.lines import DayBar, SlaLine, TicketLine
from notifier.digests.outlook import judge_exit, judge_standing, sla_of
from notifier.digests.queries import Tally
from notifier.render import Renderer
from tickets.models import ExitDecision
from tickets.phases import phase_on


def sample_context(config: Config) -> dict[str, Any]:
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    go_live = date(2026, 11, 23)
    settings = config.exit
    tally = Tally(3, {"P1": 1, "P2": 1, "P3": 1, "P4": 0}, {"crm_admin": 3})
    line = TicketLine("HC-1", "CRM down", "P1", "P1 Critical", "CRM admin", "New", "1h 00m",
                      "response overdue by 10m", True)
    bar = DayBar(go_live, "Mon 23 Nov", 3, 1, 180, 60, "###", "=")
    sla = SlaLine("P1", "P1 Critical", "1 hour", 1, 1, 1, "33%", False)
    facts = ExitFacts(1, 1, 3, 3, 2, 1, overdue_blocking=1, scheduled_open=1)
    verdict = judge_exit(facts, settings)
    phase = phase_on(go_live, now.date())
    decision = ExitDecision(decision="conditional", text="HC-1 fixed by Friday", actor="pm@example.com",
                            actor_name="Pat", at=now, via="mail")
    return {
        "now": now, "today": now.date(), "phase": phase, "day_number": 1,
        "go_live": go_live, "support": config.support, "tz": config.hypercare.tz, "facts": facts,
        "standing": judge_standing(facts, settings, phase.week), "verdict": verdict,
        "sla_figure": sla_of(facts, settings),
        "sla_window": "last 7 days", "exit_day": go_live + timedelta(days=25), "blocking_names": "P1/P2",
        "since": now - timedelta(days=1), "new": tally, "resolved": tally, "open": tally,
        "blocking": [line], "blocking_more": 1, "sla": [sla], "oldest": [line],
        "trend": [bar], "severity_rows": [("P1 Critical", 1)], "role_rows": [("CRM admin", 3)],
        "bouncing_people": ["ada@example.com (team): 1 bounce(s), last 2026-11-23 09:00 UTC"],
        "start": now - timedelta(days=7), "end": now, "opened_total": 3, "resolved_total": 1, "sla_goal": "90%",
        "covered": "Week 1", "covered_phase": phase,
        "responses": 2, "response_mean": "30m", "response_p90": "50m", "topics": [("outage", 2)],
        "reopened_total": 1, "reopened": [("HC-1", "CRM down", 1)], "rated": 1, "rating": "2.0",
        "low_ratings": [{"key": "HC-1", "rating": 2, "comment": "Took two days", "at": now}],
        **sample_pack(now, line, settings), "decision": decision, "decision_word": "CONDITIONAL GO",
        "incidents": ["INC-1 CRM is down, 8 reports, 08:12-08:19, resolved"],
    }


def preflight(renderer: Renderer, config: Config) -> None:
    """Raise ``TemplateProblem`` naming the digest template that cannot render."""
    renderer.check(DIGEST_TEMPLATES)
    context = sample_context(config)
    for key in DIGEST_TEMPLATES:
        renderer.render(key, **context)
