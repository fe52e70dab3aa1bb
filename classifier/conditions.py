"""Condition types of a rule: each a tiny class with a TOML ``key``, a ``description`` and one ``check``.

Why classes in one literal table: an admin reading a rule file and an engineer reading
this module must see the same list of condition types; ``CONDITION_KINDS`` is that
list, in the order they are evaluated inside one table, and refuses duplicate keys.
Keyword and regex conditions never search the text themselves: the classifier runs
the one compiled matcher per mail and they only look up its hits (``MatchContext``).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, ClassVar

from classifier.facts import MailFacts
from classifier.text import PhraseHit, PhraseMatcher

FIELDS = ("subject", "body")
DEFAULT_WEIGHTS = {"subject": 2.0, "body": 1.0}
MODIFIERS = ("fields", "except", "negation")


Trigger = tuple[str, object]  # ("phrase", id) | ("regex", id) | ("sender", address or domain)


def sender_keys(address: str) -> frozenset[Trigger]:
    """The sender triggers a mail offers: its address, its domain and every parent domain."""
    address = address.lower()
    labels = address.rpartition("@")[2].split(".")
    keys = {("sender", address)} | {("sender", ".".join(labels[i:])) for i in range(len(labels) - 1)}
    return frozenset(keys)


class ConditionError(ValueError):
    """A mistake inside one condition; the loader prefixes the file and rule name."""


@dataclass
class MatchContext:
    """Everything one mail offers to conditions, computed once per mail by the classifier."""

    facts: MailFacts
    phrase_hits: dict[int, list[PhraseHit]]
    regex_hits: dict[int, list[tuple[str, str, bool]]]  # regex id -> [(field, matched text, negated)]
    local_time: datetime
    in_business_hours: bool


@dataclass(frozen=True)
class Outcome:
    score: float
    evidence: tuple[str, ...]


class Builder:
    """Collects phrases and regexes of every rule into the shared matcher while rules are parsed."""

    def __init__(self) -> None:
        self.matcher = PhraseMatcher()
        self.regexes: list[re.Pattern[str]] = []
        self._regex_ids: dict[str, int] = {}

    def phrase(self, word: Any) -> int:
        if not isinstance(word, str):
            raise ConditionError(f"keyword {word!r} must be a string")
        try:
            return self.matcher.add(word)
        except ValueError as exc:
            raise ConditionError(f"{exc}; use whole words") from None

    def regex(self, pattern: Any) -> int:
        if not isinstance(pattern, str):
            raise ConditionError(f"regex {pattern!r} must be a string")
        if pattern in self._regex_ids:
            return self._regex_ids[pattern]
        if re.search(r"\(\?P[<=]|\\[1-9]|\(\?<[^=!]", pattern):
            raise ConditionError(
                f"regex {pattern!r}: named groups and backreferences are not supported; use (?:...)"
            )
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ConditionError(f"invalid regex {pattern!r} ({exc}); fix the pattern") from None
        if compiled.search(""):
            raise ConditionError(f"regex {pattern!r} matches empty text; make it need a character")
        self._regex_ids[pattern] = len(self.regexes)
        self.regexes.append(compiled)
        return self._regex_ids[pattern]


class Condition:
    key: ClassVar[str]
    description: ClassVar[str]

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Condition:
        """Build from the TOML *value* of ``key`` (``mods`` = fields/except/negation of the same table)."""
        raise NotImplementedError

    def check(self, ctx: MatchContext) -> Outcome | None:
        """The outcome when the condition holds for this mail, else None."""
        raise NotImplementedError

    def triggers(self) -> frozenset[Trigger] | None:
        """Facts one of which must be present for this to hold (None: it may hold without any).

        The classifier indexes rules by these, so a rule is only checked for mails that
        contain one of its words, regexes or sender keys: the cost of 1,000 rules is the
        cost of the few that could fire.
        """
        return None


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConditionError(f"{what} must be a non-empty string or list of strings, got {value!r}")
    return tuple(v.strip() for v in value)


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
        self.exclude, self.negation = exclude, negation

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Keywords:
        words = _strings(value, "keywords")
        excluded = _strings(mods["except"], "except") if "except" in mods else ()
        negation = mods.get("negation", True)
        if not isinstance(negation, bool):
            raise ConditionError(f"negation must be true or false, got {negation!r}")
        return cls(words, tuple(builder.phrase(w) for w in words), _weights(mods),
                   frozenset(builder.phrase(w) for w in excluded), negation)

    def check(self, ctx: MatchContext) -> Outcome | None:
        found: list[PhraseHit] = []
        for pid in self.pids:
            for hit in ctx.phrase_hits.get(pid, ()):
                if hit.field not in self.weights or (self.negation and hit.negated):
                    continue
                if not self._excluded(hit, ctx):
                    found.append(hit)
        if not found:
            return None
        # Overlapping keywords ("crm is down" and "is down") are one piece of evidence: the longest counts.
        found.sort(key=lambda h: h.start - h.end)
        kept: list[PhraseHit] = []
        for hit in found:
            if not any(k.field == hit.field and k.start <= hit.start and hit.end <= k.end for k in kept):
                kept.append(hit)
        kept.sort(key=lambda h: (FIELDS.index(h.field), h.start))
        best: dict[str, tuple[float, str]] = {}
        for hit in kept:
            weight = self.weights[hit.field]
            if weight > best.get(hit.text, (0.0, ""))[0]:
                best[hit.text] = (weight, f'{hit.field} "{hit.text}"')
        return Outcome(sum(w for w, _ in best.values()), tuple(e for _, e in best.values()))

    def _excluded(self, hit: PhraseHit, ctx: MatchContext) -> bool:
        for pid in self.exclude:
            for other in ctx.phrase_hits.get(pid, ()):
                if other.field == hit.field and other.start < hit.end and hit.start < other.end:
                    return True
        return False

    def triggers(self) -> frozenset[Trigger] | None:
        return frozenset(("phrase", pid) for pid in self.pids)


class Regex(Condition):
    key = "regex"
    description = "regular expressions in subject/body (case-insensitive, negation-aware)"

    def __init__(self, rids: tuple[int, ...], weights: dict[str, float], negation: bool) -> None:
        self.rids, self.weights, self.negation = rids, weights, negation

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Regex:
        if "except" in mods:
            raise ConditionError("except applies to keywords only; write the exclusion into the regex")
        negation = mods.get("negation", True)
        if not isinstance(negation, bool):
            raise ConditionError(f"negation must be true or false, got {negation!r}")
        return cls(tuple(builder.regex(p) for p in _strings(value, "regex")), _weights(mods), negation)

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


def address_matches(address: str, pattern: str) -> bool:
    """``ceo@x.com`` exact, ``x.com`` / ``@x.com`` the domain and its subdomains; ``*`` wildcards allowed."""
    address, pattern = address.lower(), pattern.lower()
    if "@" in pattern and not pattern.startswith("@"):
        return fnmatch.fnmatchcase(address, pattern)
    domain = address.rpartition("@")[2]
    pattern = pattern.lstrip("@")
    return fnmatch.fnmatchcase(domain, pattern) or fnmatch.fnmatchcase(domain, "*." + pattern)


class Sender(Condition):
    key = "sender"
    description = "sender address or domain (VIP lists)"

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = tuple(p.lower() for p in patterns)
        self._wild = any(ch in p for p in self.patterns for ch in "*?[")
        self._keys = frozenset(("sender", p.lstrip("@")) for p in self.patterns)

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Sender:
        return cls(_strings(value, cls.key))

    def check(self, ctx: MatchContext) -> Outcome | None:
        sender = ctx.facts.sender
        if not sender:
            return None
        if self._wild:
            held = any(address_matches(sender, p) for p in self.patterns)
        else:
            held = not self._keys.isdisjoint(sender_keys(sender))
        return Outcome(1.0, (f"sender {sender}",)) if held else None

    def triggers(self) -> frozenset[Trigger] | None:
        return None if self._wild else self._keys


class Recipients(Sender):
    key = "recipients"
    description = "any recipient address or domain"

    def triggers(self) -> frozenset[Trigger] | None:
        return None

    def check(self, ctx: MatchContext) -> Outcome | None:
        for address in ctx.facts.recipients:
            if any(address_matches(address, p) for p in self.patterns):
                return Outcome(1.0, (f"recipient {address}",))
        return None


class Header(Condition):
    key = "header"
    description = "header values: {name = pattern or [patterns]}, * wildcards, case-insensitive"

    def __init__(self, wanted: dict[str, tuple[str, ...]]) -> None:
        self.wanted = wanted

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Header:
        if not isinstance(value, dict) or not value:
            raise ConditionError('header must be a table like {importance = "high"}')
        return cls({name.lower(): tuple(p.lower() for p in _strings(v, f"header {name}"))
                    for name, v in value.items()})

    def check(self, ctx: MatchContext) -> Outcome | None:
        for name, patterns in self.wanted.items():
            value = ctx.facts.headers.get(name)
            if value is None:
                continue
            for line in value.lower().split("\n"):
                line = line.strip()
                if any(fnmatch.fnmatchcase(line, p) for p in patterns):
                    return Outcome(1.0, (f"header {name}: {line[:60]}",))
        return None


class Attachment(Condition):
    key = "attachment"
    description = "attachment content types, e.g. image/* or application/pdf"

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Attachment:
        return cls(tuple(p.lower() for p in _strings(value, cls.key)))

    def check(self, ctx: MatchContext) -> Outcome | None:
        for kind in ctx.facts.attachment_types:
            if any(fnmatch.fnmatchcase(kind, p) for p in self.patterns):
                return Outcome(1.0, (f"attachment {kind}",))
        return None


def _clock(text: str) -> time:
    from config import parse_time

    return parse_time(text.strip())


class TimeOfDay(Condition):
    key = "time"
    description = 'received "business_hours", "outside_business_hours" or "HH:MM-HH:MM" (local time)'

    def __init__(self, spec: str, span: tuple[time, time] | None) -> None:
        self.spec, self.span = spec, span

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> TimeOfDay:
        if value in ("business_hours", "outside_business_hours"):
            return cls(value, None)
        start, sep, end = str(value).partition("-")
        try:
            if not sep:
                raise ValueError
            return cls(str(value), (_clock(start), _clock(end)))
        except ValueError:
            raise ConditionError(
                f'time must be "business_hours", "outside_business_hours" or like "18:00-08:00", '
                f"got {value!r}"
            ) from None

    def check(self, ctx: MatchContext) -> Outcome | None:
        local = ctx.local_time
        stamp = local.strftime("%a %H:%M %Z")
        if self.span is None:
            inside = ctx.in_business_hours
            if inside == (self.spec == "business_hours"):
                return Outcome(1.0, (f"received {stamp} ({self.spec.replace('_', ' ')})",))
            return None
        start, end = self.span
        now = local.time()
        inside = start <= now < end if start <= end else (now >= start or now < end)
        return Outcome(1.0, (f"received {stamp} (within {self.spec})",)) if inside else None


class Days(Condition):
    key = "days"
    description = 'received on weekdays like "Sat-Sun" or ["Mon", "Fri"] (local time)'

    def __init__(self, days: frozenset[int]) -> None:
        self.days = days

    @classmethod
    def parse(cls, value: Any, mods: dict[str, Any], builder: Builder) -> Days:
        from config import parse_weekdays

        try:
            return cls(parse_weekdays(value))
        except ValueError as exc:
            raise ConditionError(f"days: {exc}") from None

    def check(self, ctx: MatchContext) -> Outcome | None:
        if ctx.local_time.weekday() in self.days:
            return Outcome(1.0, (f"received on {ctx.local_time.strftime('%a')}",))
        return None


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


def _tables(value: Any, key: str) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise ConditionError(f"{key} must be a table or a list of tables like [{{keywords = [...]}}]")
    return value


def _table_of_kinds(kinds: tuple[type[Condition], ...]) -> dict[str, type[Condition]]:
    table: dict[str, type[Condition]] = {}
    for kind in kinds:
        if kind.key in table or kind.key in MODIFIERS:
            raise RuntimeError(f"duplicate condition key {kind.key!r}")
        table[kind.key] = kind
    return table


CONDITION_KINDS: tuple[type[Condition], ...] = (
    Keywords, Regex, Sender, Recipients, Header, Attachment, TimeOfDay, Days, AllOf, AnyOf, NoneOf,
)
KINDS = _table_of_kinds(CONDITION_KINDS)


def parse_table(table: dict[str, Any], builder: Builder, extra: frozenset[str] = frozenset()) -> Condition:
    """One TOML table of conditions (keys ANDed) -> a Condition; *extra* keys belong to the caller."""
    unknown = sorted(set(table) - set(KINDS) - set(MODIFIERS) - extra)
    if unknown:
        raise ConditionError(
            f"unknown key {unknown[0]!r}; conditions are {', '.join(KINDS)} (with {', '.join(MODIFIERS)})"
        )
    mods = {k: table[k] for k in MODIFIERS if k in table}
    if mods and "keywords" not in table and "regex" not in table:
        raise ConditionError(f"{', '.join(mods)} only apply next to keywords or regex")
    children = [KINDS[key].parse(table[key], mods, builder) for key in KINDS if key in table]
    if not children:
        raise ConditionError(f"no condition; add one of {', '.join(KINDS)}")
    return children[0] if len(children) == 1 else AllOf(tuple(children))
