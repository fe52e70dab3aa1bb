"""The two judgements of a go-live, computed from the same SQL figures.

* ``judge_exit``: the go/no-go against the ``[exit]`` criteria.  Only *blocking* criteria
  (open P1/P2, the SLA on a meaningful sample, new P1) can make it NO-GO; a backlog that is
  not falling is listed as hand-over work, never as a reason.
* ``judge_standing``: the one-line verdict at the top of every digest and of the dashboard:
  on track / at risk / off track, and why.  Week 1 is never "off track": that early the
  question is whether the team keeps up, and the answer is "at risk" with the reason.

Why one module: the exit report, the weekly summary, the daily status and the dashboard must
never disagree, so all of them call ``exit_facts`` once and judge those facts here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from config import ExitSettings
from notifier.digests import queries as q
from notifier.digests.criteria import CriterionResult, ExitFacts, SlaFigure, evaluate, sla_figure


@dataclass(frozen=True)
class Verdict:
    go: bool
    criteria: list[CriterionResult]

    @property
    def word(self) -> str:
        return "GO" if self.go else "NO-GO"

    @property
    def blockers(self) -> list[CriterionResult]:
        """Blocking criteria that failed: the reasons for NO-GO."""
        return [c for c in self.criteria if c.blocking and c.judged and not c.passed]

    @property
    def backlog(self) -> list[CriterionResult]:
        """Non-blocking criteria that failed: hand-over work, not a reason for NO-GO."""
        return [c for c in self.criteria if not c.blocking and not c.passed]


STANDING_WORDS = {"on_track": "On track", "at_risk": "At risk", "off_track": "Off track"}


@dataclass(frozen=True)
class Standing:
    """On track / at risk / off track, and the reason in a few words."""

    state: str  # on_track | at_risk | off_track
    reason: str

    @property
    def word(self) -> str:
        return STANDING_WORDS[self.state]

    @property
    def line(self) -> str:
        return f"{self.word}: {self.reason}"

    @property
    def act(self) -> bool:
        """Something to act on (the only case a digest colours its verdict)."""
        return self.state != "on_track"


def exit_facts(session: Session, settings: ExitSettings, now: datetime, sla_since: datetime | None = None,
               tallies: dict[str, q.SlaTally] | None = None) -> ExitFacts:
    """Every figure the criteria and the standing need, as of *now* (SQL aggregates only).

    The SLA window is the last ``sla_window_days`` unless *sla_since* names it (the weekly
    summary judges exactly the week it covers, so its tile and its criteria show one figure).  A digest
    that already counted that window passes its *tallies* (one scan, and the same numbers by design).
    """
    sla_start = sla_since or now - timedelta(days=settings.sla_window_days)
    counted = (tallies if tallies is not None else q.sla_tallies(session, sla_start, now, now)).values()
    backlog_now, backlog_before = q.backlog_at(session, now, now - timedelta(days=settings.backlog_window_days),
                                               severities=settings.backlog_severities)
    open_by_severity = q.open_tally(session).by_severity
    return ExitFacts(
        open_blocking=sum(open_by_severity.get(s, 0) for s in settings.blocking_severities),
        sla_met=sum(t.met for t in counted),
        sla_measured=sum(t.measured for t in counted),
        backlog_now=backlog_now,
        backlog_before=backlog_before,
        recent_p1=q.created_count(session, now - timedelta(days=settings.no_p1_days), ("P1",), until=now),
        overdue_blocking=q.overdue_count(session, settings.blocking_severities, now),
        scheduled_open=sum(n for s, n in open_by_severity.items() if s not in settings.backlog_severities),
    )


def judge_exit(facts: ExitFacts, settings: ExitSettings) -> Verdict:
    results = evaluate(facts, settings)
    return Verdict(all(r.passed for r in results if r.blocking), results)


def sla_of(facts: ExitFacts, settings: ExitSettings) -> SlaFigure:
    return sla_figure(facts.sla_met, facts.sla_measured, settings)


def judge_standing(facts: ExitFacts, settings: ExitSettings, week: int) -> Standing:
    """The most serious reason decides; the reasons of the same level are all named."""
    levels = "/".join(settings.blocking_severities)
    sla = sla_of(facts, settings)
    off, risk = [], []
    if facts.overdue_blocking:
        off.append(f"{facts.overdue_blocking} open {levels} past the response time")
    if sla.below:
        off.append(f"first-response SLA {sla.text}, target {sla.goal:.0%}")
    if facts.open_blocking > facts.overdue_blocking:
        risk.append(f"{facts.open_blocking - facts.overdue_blocking} open {levels} within SLA")
    if sla.small and sla.share is not None and sla.share < sla.goal:
        risk.append(f"first-response SLA {sla.text}")
    if week > 1 and facts.backlog_now > facts.backlog_before:  # week 1 starts from an empty backlog
        risk.append(f"backlog rising ({facts.backlog_before} -> {facts.backlog_now} open "
                    f"in {settings.backlog_window_days} days)")
    if facts.recent_p1:
        risk.append(f"{facts.recent_p1} new P1 in the last {settings.no_p1_days} days")
    if off and week > 1:
        return Standing("off_track", "; ".join(off))
    if off or risk:
        return Standing("at_risk", "; ".join([*off, *risk]))
    backlog = (f"backlog {facts.backlog_before} -> {facts.backlog_now} open" if facts.backlog_now
               else "no open backlog")
    return Standing("on_track", f"no open {levels}; first-response SLA {sla.text}; {backlog}")
