"""The classifier's answer and its explanation.

Why the explanation travels with the verdict: a P1 wakes someone up, so every ticket
stores which rules fired and the exact words that made them fire; the ticket view,
the acknowledgement and the escalation all render from this one record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tickets.views import strings_of, triage_lines


@dataclass(frozen=True)
class RuleHit:
    name: str
    description: str
    evidence: tuple[str, ...]
    severity: str | None
    role: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "evidence": list(self.evidence),
            "severity": self.severity,
            "role": self.role,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleHit:
        return cls(
            name=str(data.get("name", "")),
            description=str(data.get("description", "")),
            evidence=tuple(str(e) for e in data.get("evidence", ())),
            severity=data.get("severity"),
            role=data.get("role"),
        )


FALLBACK_SEVERITY = "fallback-severity"
FALLBACK_ROLE = "fallback-role"


@dataclass(frozen=True)
class Axis:
    """One axis of the matrix: its value, the rule that set it (None: the default) and the words."""

    value: str
    rule: str | None = None
    evidence: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "rule": self.rule, "evidence": list(self.evidence)}

    @classmethod
    def from_json(cls, data: Any) -> Axis | None:
        if not isinstance(data, dict) or not isinstance(data.get("value"), str):
            return None
        rule = data.get("rule")
        return cls(data["value"], rule if isinstance(rule, str) else None,
                   tuple(str(e) for e in data.get("evidence") or () if isinstance(e, str)))


@dataclass(frozen=True)
class Triage:
    """Who is affected x what is hit, the severity the matrix gives them, and any doubt about it.

    Why it is stored next to the rules that fired: the team notice and ``show`` print the two axes
    with their words, and an ``uncertain`` verdict asks its owner to confirm with ``#severity``;
    both must read what the classifier saw when the mail came in, not a later rule file.
    """

    scope: Axis
    hit: Axis | None
    matrix_severity: str | None
    doubts: tuple[str, ...] = ()  # why the verdict is uncertain; empty = it is not
    settled: tuple[str, ...] = ()  # the rules' doubts the learned weights settled (classifier/learned.py)

    @property
    def uncertain(self) -> bool:
        return bool(self.doubts)

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope.to_json(), "hit": self.hit.to_json() if self.hit else None,
                "matrix_severity": self.matrix_severity, "uncertain": self.uncertain,
                "doubts": list(self.doubts), "settled": list(self.settled)}

    @classmethod
    def from_json(cls, data: Any) -> Triage | None:
        """The stored triage, or None for tickets classified before it existed (or a damaged value)."""
        if not isinstance(data, dict):
            return None
        scope = Axis.from_json(data.get("scope"))
        if scope is None:
            return None
        severity = data.get("matrix_severity")
        return cls(scope, Axis.from_json(data.get("hit")), severity if isinstance(severity, str) else None,
                   strings_of(data.get("doubts")), strings_of(data.get("settled")))

    def lines(self) -> list[str]:
        """Human lines: who, what, and the doubts (the same words as ``show`` and the notices)."""
        return triage_lines(self.to_json())


NO_TRIAGE = Triage(Axis("one"), None, None)


@dataclass(frozen=True)
class Verdict:
    """Severity and role, with the rules that fired (the deciding ones first)."""

    severity: str
    role: str
    rules: tuple[RuleHit, ...]
    tags: tuple[str, ...]
    fallback: bool
    notes: tuple[str, ...] = ()  # how the decision was reached, one short line each
    triage: Triage = NO_TRIAGE
    ceiling: str | None = None  # the mildest severity ceiling a fired rule set ("it works again": P3)
    # The most severe floor or fixed severity a fired rule set (a site's "SAP errors are at least P2"): the
    # learned weights never go below it, also when the matrix gave the same severity anyway.
    floor: str | None = None

    @property
    def uncertain(self) -> bool:
        return self.triage.uncertain

    def to_json(self) -> list[dict[str, Any]]:
        """What ``Ticket.classification`` stores."""
        return [hit.to_json() for hit in self.rules]

    def explain(self) -> str:
        """Short human lines: the decision, then each rule with its evidence."""
        lines = [f"{self.severity} / {self.role}" + (" (fallback)" if self.fallback else "")
                 + (" (uncertain)" if self.uncertain else "")]
        lines += [f"  {line}" for line in self.triage.lines()]
        lines += [f"  {note}" for note in self.notes]
        for hit in self.rules:
            effect = ", ".join(x for x in (hit.severity, hit.role) if x)
            head = f"- {hit.name}" + (f" ({effect})" if effect else "")
            words = "; ".join(hit.evidence)
            lines.append(f"{head}: {hit.description}" + (f" [{words}]" if words else ""))
        if self.tags:
            lines.append(f"  tags: {', '.join(self.tags)}")
        return "\n".join(lines)
