"""Conditions on facts of the mail rather than its words: sender, recipients, headers, attachments, time.

Why apart from the keyword/regex conditions: these read ``MailFacts`` and the receive
time directly and never touch the shared phrase/regex matcher, so they have no part in
the text matching that ``classifier.conditions`` is about.
"""

from __future__ import annotations

import fnmatch
from datetime import time
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
        return cls(strings(value, cls.key))

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
        return cls({name.lower(): tuple(p.lower() for p in strings(v, f"header {name}"))
                    for name, v in value.items()})

    def header_names(self) -> frozenset[str]:
        return frozenset(self.wanted)

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
        return cls(tuple(p.lower() for p in strings(value, cls.key)))

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
        if self.span is None:
            if ctx.in_business_hours != (self.spec == "business_hours"):
                return None
            detail = self.spec.replace("_", " ")
        else:
            start, end = self.span
            now = local.time()
            if not (start <= now < end if start <= end else (now >= start or now < end)):
                return None
            detail = f"within {self.spec}"
        # Formatted only when the condition holds: a rule like after-hours is checked on every mail.
        return Outcome(1.0, (f"received {local.strftime('%a %H:%M %Z')} ({detail})",))


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
