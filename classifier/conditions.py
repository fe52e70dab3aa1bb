"""Condition types of a rule: each a tiny class with a TOML ``key``, a ``description`` and one ``check``.

Why classes in one literal table: an admin reading a rule file and an engineer reading
this module must see the same list of condition types; ``CONDITION_KINDS`` is that
list, in the order they are evaluated inside one table, and refuses duplicate keys.
Keyword and regex conditions never search the text themselves: the classifier runs
the one compiled matcher per mail and they only look up its hits (``MatchContext``).
The conditions on mail facts (sender, recipients, header, attachment, time, days) live
in ``classifier.mail_conditions``, the shared contract in ``classifier.condition_base``;
the table below lists them all, and every name stays importable from here.
"""

from __future__ import annotations

from typing import Any

from classifier.condition_base import (
    Builder,
    Condition,
    ConditionError,
    MatchContext,
    Outcome,
    Trigger,
    sender_keys,
    strings,
)
from classifier.mail_conditions import Attachment, Days, Header, Recipients, Sender, TimeOfDay, address_matches
from classifier.text import PhraseHit
from core.errors import DuplicateName
from core.registry import Registry

__all__ = [  # rules.py and engine.py import the shared contract from here, as before the split
    "CONDITION_KINDS", "DEFAULT_WEIGHTS", "FIELDS", "KINDS", "MODIFIERS", "AllOf", "AnyOf", "Attachment",
    "Builder", "Condition", "ConditionError", "Days", "Header", "Keywords", "MatchContext", "NoneOf", "Outcome",
    "Recipients", "Regex", "Sender", "TimeOfDay", "Trigger", "address_matches", "parse_table", "sender_keys",
]

FIELDS = ("subject", "body")
DEFAULT_WEIGHTS = {"subject": 2.0, "body": 1.0}
_FIELD_RANK = {field: rank for rank, field in enumerate(FIELDS)}
MODIFIERS = ("fields", "except", "negation", "forms")


def _weights(mods: dict[str, Any]) -> dict[str, float]:
    value = mods.get("fields")
    if value is None:
        return dict(DEFAULT_WEIGHTS)
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        names_only = all(isinstance(f, str) for f in value)
        value = {f: DEFAULT_WEIGHTS.get(f, 0.0) for f in value} if names_only else None
    if not isinstance(value, dict) or not value:
        raise ConditionError('fields must be a list like ["subject", "body"] or a table like {subject = 3}')
    for name, weight in value.items():
        if name not in FIELDS:
            raise ConditionError(f"unknown field {name!r}; use {' or '.join(FIELDS)}")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise ConditionError(f"weight of field {name!r} must be a positive number, got {weight!r}")
    return {k: float(v) for k, v in value.items()}


class Keywords(Condition):
    key = "keywords"
    description = "whole words or phrases in subject/body (case- and accent-insensitive, negation-aware)"

    def __init__(self, words: tuple[str, ...], pids: tuple[int, ...], weights: dict[str, float],
                 exclude: frozenset[int], negation: bool) -> None:
        self.words, self.pids, self.weights = words, pids, weights
        self.pid_set = frozenset(pids)
        self.exclude, self.negation = exclude, negation

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Keywords:
        words = strings(value, "keywords")
        excluded = strings(mods["except"], "except") if "except" in mods else ()
        negation = mods.get("negation", True)
        if not isinstance(negation, bool):
            raise ConditionError(f"negation must be true or false, got {negation!r}")
        forms = mods.get("forms", False)
        if not isinstance(forms, bool):
            raise ConditionError(f"forms must be true or false, got {forms!r}")
        return cls(words, tuple(builder.phrase(w, forms) for w in words), _weights(mods),
                   frozenset(builder.phrase(w) for w in excluded), negation)

    def check(self, ctx: MatchContext) -> Outcome | None:
        hits = ctx.phrase_hits
        if self.pid_set.isdisjoint(hits):  # half the checks: a sibling condition brought the rule here
            return None
        weights, negation = self.weights, self.negation
        # A long keyword list meets a short mail: walk the mail's few hits, not every keyword.
        groups = ([same for pid, same in hits.items() if pid in self.pid_set] if len(hits) < len(self.pids)
                  else [hits[pid] for pid in self.pids if pid in hits])
        found = [hit for same in groups for hit in same
                 if hit.field in weights and not (negation and hit.negated)]
        if found and self.exclude:  # the except phrases' positions only for a mail that may hold
            excluded = self._excluded_positions(ctx)
            if excluded:
                found = [hit for hit in found
                         if not any((hit.field, i) in excluded for i in range(hit.start, hit.end))]
        if not found:
            return None
        if len(found) == 1:  # the common case: no overlap to resolve, one piece of evidence
            hit = found[0]
            return Outcome(weights[hit.field], (f'{hit.field} "{hit.text}"',))
        best: dict[str, tuple[float, str]] = {}
        for hit in _outermost(found):
            weight = weights[hit.field]
            if weight > best.get(hit.text, (0.0, ""))[0]:
                best[hit.text] = (weight, f'{hit.field} "{hit.text}"')
        return Outcome(sum(w for w, _ in best.values()), tuple(e for _, e in best.values()))

    def _excluded_positions(self, ctx: MatchContext) -> frozenset[tuple[str, int]]:
        """The (field, word position) pairs an ``except`` phrase covers: one set, so each hit is a few lookups.

        Why a set of positions and not a pairwise overlap test: a mail repeating one sentence
        2,000 times has 2,000 hits and 2,000 excepted phrases; comparing every pair was quadratic.
        """
        if not self.exclude:
            return frozenset()
        return frozenset((other.field, i) for pid in self.exclude for other in ctx.phrase_hits.get(pid, ())
                         for i in range(other.start, other.end))

    def triggers(self) -> frozenset[Trigger] | None:
        return frozenset(("phrase", pid) for pid in self.pids)


class Regex(Condition):
    key = "regex"
    description = "regular expressions in subject/body (case-insensitive, negation-aware)"

    def __init__(self, rids: tuple[int, ...], weights: dict[str, float], negation: bool) -> None:
        self.rids, self.weights, self.negation = rids, weights, negation

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Regex:
        if "except" in mods or "forms" in mods:
            raise ConditionError("except and forms apply to keywords only; write them into the regex")
        negation = mods.get("negation", True)
        if not isinstance(negation, bool):
            raise ConditionError(f"negation must be true or false, got {negation!r}")
        return cls(tuple(builder.regex(p) for p in strings(value, "regex")), _weights(mods), negation)

    def check(self, ctx: MatchContext) -> Outcome | None:
        best: dict[int, tuple[float, str]] = {}
        for rid in self.rids:
            for field, text, negated in ctx.regex_hits.get(rid, ()):
                weight = self.weights.get(field)
                if weight is None or (self.negation and negated):
                    continue
                if weight > best.get(rid, (0.0, ""))[0]:
                    best[rid] = (weight, f'{field} "{text}"')
        if not best:
            return None
        return Outcome(sum(w for w, _ in best.values()), tuple(e for _, e in best.values()))

    def triggers(self) -> frozenset[Trigger] | None:
        return frozenset(("regex", rid) for rid in self.rids)


class AllOf(Condition):
    key = "all"
    description = "every listed condition holds"

    def __init__(self, children: tuple[Condition, ...]) -> None:
        self.children = children

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Condition:
        return cls(tuple(parse_table(t, builder) for t in _tables(value, cls.key)))

    def check(self, ctx: MatchContext) -> Outcome | None:
        score, evidence = 0.0, []
        for child in self.children:
            out = child.check(ctx)
            if out is None:
                return None
            score += out.score
            evidence.extend(out.evidence)
        return Outcome(score, tuple(evidence))

    def triggers(self) -> frozenset[Trigger] | None:
        found = [t for t in (c.triggers() for c in self.children) if t is not None]
        return min(found, key=len) if found else None

    def header_names(self) -> frozenset[str]:
        return frozenset().union(*(c.header_names() for c in self.children))


class AnyOf(AllOf):
    key = "any"
    description = "at least one listed condition holds (all that hold add to the score)"

    def check(self, ctx: MatchContext) -> Outcome | None:
        outs = [o for o in (c.check(ctx) for c in self.children) if o is not None]
        if not outs:
            return None
        return Outcome(sum(o.score for o in outs), tuple(e for o in outs for e in o.evidence))

    def triggers(self) -> frozenset[Trigger] | None:
        found = [c.triggers() for c in self.children]
        if any(t is None for t in found):
            return None
        return frozenset().union(*(t for t in found if t is not None))


class NoneOf(AllOf):
    key = "not"
    description = "none of the listed conditions holds (adds nothing to the score)"

    def check(self, ctx: MatchContext) -> Outcome | None:
        if any(c.check(ctx) is not None for c in self.children):
            return None
        return Outcome(0.0, ())

    def triggers(self) -> frozenset[Trigger] | None:
        return None


def _outermost(hits: list[PhraseHit]) -> list[PhraseHit]:
    """Hits not inside another hit of the same field, in (field, position) order.

    Overlapping keywords of one condition ("crm is down" and "is down") are one piece of
    evidence: the longest counts.  Sorted by start, longest first, a hit lies inside an
    earlier one exactly when an earlier hit of its field reaches as far: one sweep, not a
    comparison of every pair (which made a mail of many repeated sentences quadratic).
    """
    ordered = sorted(hits, key=lambda h: (_FIELD_RANK[h.field], h.start, -h.end))
    kept: list[PhraseHit] = []
    field, reach = "", -1
    for hit in ordered:
        if hit.field != field:
            field, reach = hit.field, -1
        if hit.end <= reach:
            continue
        kept.append(hit)
        reach = hit.end
    return kept


def _tables(value: Any, key: str) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConditionError(f"{key} must be a table or a list of tables like [{{keywords = [...]}}]")
    return value


CONDITION_KINDS: tuple[type[Condition], ...] = (
    Keywords, Regex, Sender, Recipients, Header, Attachment, TimeOfDay, Days, AllOf, AnyOf, NoneOf,
)
KINDS: Registry[type[Condition]] = Registry("condition key", CONDITION_KINDS, name_of=lambda kind: kind.key)
if set(KINDS.names()) & set(MODIFIERS):
    raise DuplicateName(f"a condition key is also a modifier: {set(KINDS.names()) & set(MODIFIERS)}")


def parse_table(table: dict[str, Any], builder: Builder, extra: frozenset[str] = frozenset()) -> Condition:
    """One TOML table of conditions (keys ANDed) -> a Condition; *extra* keys belong to the caller."""
    unknown = sorted(set(table) - set(KINDS.names()) - set(MODIFIERS) - extra)
    if unknown:
        raise ConditionError(
            f"unknown key {unknown[0]!r}; conditions are {', '.join(KINDS.names())} (with {', '.join(MODIFIERS)})"
        )
    mods = {k: table[k] for k in MODIFIERS if k in table}
    if mods and "keywords" not in table and "regex" not in table:
        raise ConditionError(f"{', '.join(mods)} only apply next to keywords or regex")
    children = [KINDS[key].parse(table[key], mods, builder) for key in KINDS.names() if key in table]
    if not children:
        raise ConditionError(f"no condition; add one of {', '.join(KINDS.names())}")
    return children[0] if len(children) == 1 else AllOf(tuple(children))
