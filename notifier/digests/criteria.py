"""Exit criteria: the go/no-go of hypercare, one tiny rule per criterion.

Why rules in a table: the steering committee argues about criteria, not code; each
criterion is a class with ``name``, ``description`` and one ``check()`` that returns
its figure and pass/fail, registered in one explicit table that refuses duplicate
names, evaluated in the literal order of ``CRITERIA_ORDER``.  Thresholds live in
``config.ExitSettings`` (the ``[exit]`` section of hypercare.toml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from config import ExitSettings
from core.errors import UserError
from core.registry import Registry


@dataclass(frozen=True)
class ExitFacts:
    """The figures the criteria judge; every one computed in SQL (``outlook.exit_facts``)."""

    open_blocking: int
    sla_met: int
    sla_measured: int
    backlog_now: int  # open tickets of [exit] backlog_severities (P4 is scheduled for sprints: not counted)
    backlog_before: int
    recent_p1: int
    overdue_blocking: int = 0  # open P1/P2 past their response time, unanswered
    scheduled_open: int = 0  # open tickets outside the backlog severities (P4 scheduled for sprints)


@dataclass(frozen=True)
class SlaFigure:
    """The one first-response SLA figure: met of measured in a stated window, judged only on a real sample.

    Why one class: the headline tile, the criteria table and the dashboard must show the same
    number with the same sample size, and say "n too small" instead of judging 3 of 5.
    """

    met: int
    measured: int
    goal: float
    min_sample: int

    @property
    def share(self) -> float | None:
        return self.met / self.measured if self.measured else None

    @property
    def small(self) -> bool:
        return self.measured < self.min_sample

    @property
    def below(self) -> bool:
        """Below the goal on a meaningful sample: something to act on."""
        return not self.small and self.share is not None and self.share < self.goal

    @property
    def percent(self) -> str:
        return "n/a" if self.share is None else f"{self.share:.0%}"

    @property
    def text(self) -> str:
        """``92% (46 of 50)``, ``60% (3 of 5), n too small (< 20)``, ``no responses due``."""
        if not self.measured:
            return "no responses due"
        figure = f"{self.percent} ({self.met} of {self.measured})"
        return f"{figure}, n too small (< {self.min_sample})" if self.small else figure


def sla_figure(met: int, measured: int, settings: ExitSettings) -> SlaFigure:
    return SlaFigure(met, measured, settings.sla_target, settings.sla_min_sample)


@dataclass(frozen=True)
class CriterionResult:
    name: str
    description: str
    figure: str
    passed: bool
    blocking: bool = True  # False: backlog to hand over, never a reason for NO-GO
    judged: bool = True  # False: too little data to judge (n too small); shown, not counted

    @property
    def state(self) -> str:
        """PASS, FAIL, or "NOT JUDGED" (too few data) for the criteria tables."""
        if not self.judged:
            return "NOT JUDGED"
        return "PASS" if self.passed else "FAIL"


class Criterion:
    name: ClassVar[str]
    description: ClassVar[str]
    blocking: ClassVar[bool] = True

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        raise NotImplementedError

    def result(self, description: str, figure: str, passed: bool, judged: bool = True) -> CriterionResult:
        return CriterionResult(self.name, description, figure, passed, self.blocking, judged)


class NoOpenBlocking(Criterion):
    name = "no_open_blocking"
    description = "no open P1/P2 tickets"

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        levels = "/".join(settings.blocking_severities)
        return self.result(f"no open {levels} tickets", f"{facts.open_blocking} open", facts.open_blocking == 0)


class SlaCompliance(Criterion):
    name = "sla_compliance"
    description = "first-response SLA compliance on target"

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        description = (f"first-response SLA compliance >= {settings.sla_target:.0%} "
                       f"over the last {settings.sla_window_days} days (judged from {settings.sla_min_sample} "
                       "responses)")
        figure = sla_figure(facts.sla_met, facts.sla_measured, settings)
        if figure.small:
            return self.result(description, figure.text, True, judged=False)
        return self.result(description, figure.text, not figure.below)


class BacklogFalling(Criterion):
    name = "backlog_falling"
    description = "open backlog falling"
    blocking = False  # a slowly falling backlog is handed over, it does not stop the exit

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        levels = "/".join(settings.backlog_severities)
        description = f"open {levels} backlog lower than {settings.backlog_window_days} days ago (or empty)"
        figure = f"{facts.backlog_before} -> {facts.backlog_now} open"
        return self.result(description, figure, facts.backlog_now == 0 or facts.backlog_now < facts.backlog_before)


class NoRecentP1(Criterion):
    name = "no_recent_p1"
    description = "no new P1"

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        return self.result(f"no new P1 in the last {settings.no_p1_days} days", f"{facts.recent_p1} new P1",
                           facts.recent_p1 == 0)


class UnknownCriterion(UserError):
    """``[exit] criteria`` names a criterion that does not exist; the message lists the known ones."""


# The literal order is the order of the exit report's table.
CRITERIA = Registry("exit criterion", (NoOpenBlocking(), SlaCompliance(), BacklogFalling(), NoRecentP1()))
CRITERIA_ORDER = CRITERIA.names()


def evaluate(facts: ExitFacts, settings: ExitSettings) -> list[CriterionResult]:
    """Each enabled criterion, in the table's literal order."""
    unknown = [name for name in settings.criteria if name not in CRITERIA]
    if unknown:
        raise UnknownCriterion(f"[exit] criteria: unknown criterion {unknown[0]!r}; "
                               f"known: {', '.join(CRITERIA_ORDER)}")
    return [CRITERIA[name].check(facts, settings) for name in CRITERIA_ORDER if name in settings.criteria]
