"""What every condition kind of a rule shares: the ``Condition`` contract, its inputs and its answer.

Why a module of its own: text conditions (``classifier.conditions``) and mail-fact
conditions (``classifier.mail_conditions``) both build on this, and the kind table in
``classifier.conditions`` needs both; keeping the contract here avoids an import cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, NamedTuple

from classifier.facts import MailFacts
from classifier.text import PhraseHit, PhraseMatcher, phrase_tokens
from classifier.word_forms import FORMS_MARK
from core.errors import HypercareError

Trigger = tuple[str, object]  # ("phrase", id) | ("regex", id) | ("sender", address or domain)


def sender_keys(address: str) -> frozenset[Trigger]:
    """The sender triggers a mail offers: its address, its domain and every parent domain."""
    address = address.lower()
    labels = address.rpartition("@")[2].split(".")
    keys = {("sender", address)} | {("sender", ".".join(labels[i:])) for i in range(len(labels) - 1)}
    return frozenset(keys)


class ConditionError(HypercareError, ValueError):
    """A mistake inside one condition; the loader prefixes the file and rule name."""


@dataclass
class MatchContext:
    """Everything one mail offers to conditions, computed once per mail by the classifier."""

    facts: MailFacts
    phrase_hits: dict[int, list[PhraseHit]]
    regex_hits: dict[int, list[tuple[str, str, bool]]]  # regex id -> [(field, matched text, negated)]
    local_time: datetime
    in_business_hours: bool


class Outcome(NamedTuple):
    """What a condition that holds adds: its score and the words that made it hold.

    A named tuple: conditions build a few per mail, and a frozen dataclass's ``__init__`` cost more.
    """

    score: float
    evidence: tuple[str, ...]


class Builder:
    """Collects phrases and regexes of every rule into the shared matcher while rules are parsed."""

    def __init__(self) -> None:
        self.matcher = PhraseMatcher()
        self.regexes: list[re.Pattern[str]] = []
        self._regex_ids: dict[str, int] = {}

    def phrase(self, word: Any, forms: bool = False) -> int:
        """Register a keyword; *forms*: every word of it matches in all its forms (``~`` on each)."""
        if not isinstance(word, str):
            raise ConditionError(f"keyword {word!r} must be a string")
        if forms:
            word = " ".join(t if t.endswith(("*", FORMS_MARK)) else t + FORMS_MARK for t in phrase_tokens(word))
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

    def header_names(self) -> frozenset[str]:
        """Lower-case names of the mail headers this condition reads (``MailFacts.headers``).

        Why: decoding every header of every mail for the facts cost more than classifying;
        the intake builds only the headers some rule reads.
        """
        return frozenset()

    def triggers(self) -> frozenset[Trigger] | None:
        """Facts one of which must be present for this to hold (None: it may hold without any).

        The classifier indexes rules by these, so a rule is only checked for mails that
        contain one of its words, regexes or sender keys: the cost of 1,000 rules is the
        cost of the few that could fire.
        """
        return None

def strings(value: Any, what: str) -> tuple[str, ...]:
    """A TOML string or list of strings as a tuple of stripped strings; ConditionError otherwise."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConditionError(f"{what} must be a non-empty string or list of strings, got {value!r}")
    return tuple(v.strip() for v in value)
