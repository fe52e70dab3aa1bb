"""The classifier's answer and its explanation.

Why the explanation travels with the verdict: a P1 wakes someone up, so every ticket
stores which rules fired and the exact words that made them fire; the ticket view,
the acknowledgement and the escalation all render from this one record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
class Verdict:
    """Severity and role, with the rules that fired (the deciding ones first)."""

    severity: str
    role: str
    rules: tuple[RuleHit, ...]
    tags: tuple[str, ...]
    fallback: bool
    notes: tuple[str, ...] = ()  # how the decision was reached, one short line each

    def to_json(self) -> list[dict[str, Any]]:
        """What ``Ticket.classification`` stores."""
        return [hit.to_json() for hit in self.rules]

    def explain(self) -> str:
        """Short human lines: the decision, then each rule with its evidence."""
        lines = [f"{self.severity} / {self.role}" + (" (fallback)" if self.fallback else "")]
        lines += [f"  {note}" for note in self.notes]
        for hit in self.rules:
            effect = ", ".join(x for x in (hit.severity, hit.role) if x)
            head = f"- {hit.name}" + (f" ({effect})" if effect else "")
            words = "; ".join(hit.evidence)
            lines.append(f"{head}: {hit.description}" + (f" [{words}]" if words else ""))
        if self.tags:
            lines.append(f"  tags: {', '.join(self.tags)}")
        return "\n".join(lines)
