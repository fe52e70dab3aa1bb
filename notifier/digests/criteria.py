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
    """The figures the criteria judge; every one computed in SQL by the digest builder."""

    open_blocking: int
    sla_met: int
    sla_measured: int
    backlog_now: int
    backlog_before: int
    recent_p1: int


@dataclass(frozen=True)
class CriterionResult:
    name: str
    description: str
    figure: str
    passed: bool


class Criterion:
    name: ClassVar[str]
    description: ClassVar[str]

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        raise NotImplementedError

    def result(self, figure: str, passed: bool) -> CriterionResult:
        return CriterionResult(self.name, self.description, figure, passed)


class NoOpenBlocking(Criterion):
    name = "no_open_blocking"
    description = "no open P1/P2 tickets"

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        levels = "/".join(settings.blocking_severities)
        return CriterionResult(self.name, f"no open {levels} tickets", f"{facts.open_blocking} open",
                               facts.open_blocking == 0)


class SlaCompliance(Criterion):
    name = "sla_compliance"
    description = "first-response SLA compliance on target"

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        description = (f"first-response SLA compliance >= {settings.sla_target:.0%} "
                       f"over the last {settings.sla_window_days} days")
        if not facts.sla_measured:
            return CriterionResult(self.name, description, "no responses due in the window", True)
        share = facts.sla_met / facts.sla_measured
        return CriterionResult(self.name, description,
                               f"{share:.0%} ({facts.sla_met} of {facts.sla_measured})",
                               share >= settings.sla_target)


class BacklogFalling(Criterion):
    name = "backlog_falling"
    description = "open backlog falling"

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        description = f"open backlog lower than {settings.backlog_window_days} days ago (or empty)"
        figure = f"{facts.backlog_before} -> {facts.backlog_now} open"
        return CriterionResult(self.name, description, figure,
                               facts.backlog_now == 0 or facts.backlog_now < facts.backlog_before)


class NoRecentP1(Criterion):
    name = "no_recent_p1"
    description = "no new P1"

    def check(self, facts: ExitFacts, settings: ExitSettings) -> CriterionResult:
        return CriterionResult(self.name, f"no new P1 in the last {settings.no_p1_days} days",
                               f"{facts.recent_p1} new P1", facts.recent_p1 == 0)


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
