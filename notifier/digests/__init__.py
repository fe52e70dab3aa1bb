"""Stakeholder digests: the daily status, the weekly summary and the exit report.

``builder.DigestBuilder`` assembles and renders them from SQL aggregates
(``queries``), ``criteria`` holds the exit go/no-go rules, ``samples.preflight``
proves every template renders at start; ``notifier.scheduler`` decides when each
is sent.  ``for_app(app)`` wires them from the composition root.
"""

from __future__ import annotations

from typing import Any

from notifier.digests.builder import DIGEST_TEMPLATES, KINDS, DigestBuilder, DigestProblem
from notifier.digests.criteria import ExitFacts, ExitSettings, evaluate
from tickets.phases import exit_report_day

__all__ = ["DIGEST_TEMPLATES", "KINDS", "DigestBuilder", "DigestProblem", "ExitSettings", "for_app"]


def for_app(app: Any) -> DigestBuilder:
    """The digest builder of *app*; ``[exit]`` settings when the config has them, else defaults."""
    from notifier.digests.samples import preflight

    preflight(app.renderer, app.config)
    exit_settings = app.config.exit
    evaluate(ExitFacts(0, 0, 0, 0, 0, 0), exit_settings)  # an unknown [exit] criterion fails at start
    exit_day = exit_report_day(app.go_live, app.calendar.is_business_day, app.config.hypercare.exit_date)
    return DigestBuilder(app.config, app.store, app.sla, app.renderer, app.go_live, exit_settings, exit_day)
