"""The go/no-go verdict against the ``[exit]`` criteria, computed in SQL.

Why its own module: the exit report, the weekly summary's outlook and the dashboard
must never disagree about GO or NO-GO, so all three call ``judge_exit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from config import ExitSettings
from notifier.digests import queries as q
from notifier.digests.criteria import CriterionResult, ExitFacts, evaluate


@dataclass(frozen=True)
class Verdict:
    go: bool
    criteria: list[CriterionResult]

    @property
    def word(self) -> str:
        return "GO" if self.go else "NO-GO"


def judge_exit(session: Session, settings: ExitSettings, now: datetime) -> Verdict:
    sla_start = now - timedelta(days=settings.sla_window_days)
    tallies = q.sla_tallies(session, sla_start, now, now).values()
    backlog_now, backlog_before = q.backlog_at(session, now, now - timedelta(days=settings.backlog_window_days))
    facts = ExitFacts(
        open_blocking=q.open_rows(session, severities=settings.blocking_severities, limit=0)[0],
        sla_met=sum(t.met for t in tallies),
        sla_measured=sum(t.measured for t in tallies),
        backlog_now=backlog_now,
        backlog_before=backlog_before,
        recent_p1=q.created_count(session, now - timedelta(days=settings.no_p1_days), ("P1",)),
    )
    results = evaluate(facts, settings)
    return Verdict(all(r.passed for r in results), results)
