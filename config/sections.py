"""How each section of ``hypercare.toml`` is read and checked.

Why a typed reader: it knows the section and key of every value, so every mistake
becomes one line such as ``hypercare.toml: [smtp_in] port: must be a whole number, got '25x'``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.settings import (
    DAY_NAMES,
    ROLES,
    SEVERITIES,
    ConfigError,
    DashboardSettings,
    DatabaseSettings,
    ExitSettings,
    HypercareSettings,
    ImapSettings,
    IncidentSettings,
    IntakeSettings,
    NotifierSettings,
    ReplySettings,
    RulesSettings,
    SlaSettings,
    SmtpInSettings,
    SmtpOutSettings,
    StakeholderSettings,
    SupportSettings,
    TeamMember,
    TriageSettings,
)

# What a TOML value of each Python type is called in an error ("must be a whole number", never "a int").
TYPE_WORDS = {int: "a whole number", float: "a number", str: "a text in quotes", bool: "true or false",
              list: "a list", dict: "a table"}


class Reader:
    """Typed access to one TOML table that names the exact key in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {message}")

    def table(self, section: str, raw: Any, known: set[str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(f"[{section}]", "must be a table")
        extra = set(raw) - known
        if extra:
            raise self.fail(
                f"[{section}] {sorted(extra)[0]}", f"unknown key; known keys: {', '.join(sorted(known))}"
            )
        return raw

    def get(self, section: str, raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
        value = raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            name = " or ".join(TYPE_WORDS.get(k, f"a {k.__name__}") for k in kinds)
            raise self.fail(f"[{section}] {key}", f"must be {name}, got {value!r}")
        return value

    def strings(self, section: str, raw: dict[str, Any], key: str) -> tuple[str, ...]:
        value = raw[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"[{section}] {key}", "must be a list of strings")
        return tuple(value)

    def fill(self, section: str, raw: Any, cls: type, converters: dict[str, Callable[[Any], Any]]) -> Any:
        """Build dataclass *cls* from *raw*, type-checking against the defaults' types."""
        import dataclasses

        fields = {f.name: f for f in dataclasses.fields(cls)}
        table = self.table(section, raw, set(fields))
        kwargs: dict[str, Any] = {}
        for key in table:
            if key in converters:
                try:
                    kwargs[key] = converters[key](table[key])
                except (ValueError, TypeError) as exc:
                    raise self.fail(f"[{section}] {key}", str(exc)) from None
                continue
            default = fields[key].default
            kind: type | tuple[type, ...] = type(default) if default is not dataclasses.MISSING else str
            kwargs[key] = self.get(section, table, key, kind)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            missing = re.findall(r"'(\w+)'", str(exc))
            raise self.fail(f"[{section}]", f"missing key {missing[0] if missing else ''}".strip()) from None


def parse_time(value: Any) -> time:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value):
        raise ValueError(f"expected HH:MM, got {value!r}")
    hours, minutes = map(int, value.split(":"))
    return time(hours, minutes)


def parse_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(f"expected a date like 2026-11-23, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a date like 2026-11-23, got {value!r}") from None


def parse_weekday(value: Any) -> int:
    name = str(value).strip().lower()[:3]
    if name not in DAY_NAMES:
        raise ValueError(f"expected a weekday like Mon, got {value!r}")
    return DAY_NAMES.index(name)


def parse_weekdays(value: Any) -> frozenset[int]:
    """``"Mon-Fri"``, ``"Mon,Wed,Fri"`` or a list of names."""
    parts = value if isinstance(value, list) else str(value).split(",")
    days: set[int] = set()
    for part in parts:
        first, _, last = str(part).strip().partition("-")
        start = parse_weekday(first)
        end = parse_weekday(last) if last else start
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(0, end + 1)])
    return frozenset(days)


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r}; use an IANA name like Europe/Berlin") from None
    return str(value)


def _protocol(value: Any) -> str:
    if value not in ("smtp", "lmtp"):
        raise ValueError(f"must be smtp or lmtp, got {value!r}")
    return str(value)


def _security(value: Any) -> str:
    if value not in ("ssl", "starttls", "none"):
        raise ValueError(f"must be ssl, starttls or none, got {value!r}")
    return str(value)


def _address(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise ValueError(f"expected an email address, got {value!r}")
    return value


def _hypercare(reader: Reader, raw: Any) -> HypercareSettings:
    table = dict(reader.table("hypercare", raw, {
        "go_live", "timezone", "business_hours", "business_days", "holidays", "extra_holidays",
        "sprint_start", "sprint_days", "digest_time", "weekly_summary_day", "reopen_days", "exit_date",
    }))
    if "business_hours" in table:
        span = str(table.pop("business_hours"))
        start, _, end = span.partition("-")
        try:
            table["business_start"], table["business_end"] = parse_time(start.strip()), parse_time(end.strip())
        except ValueError:
            raise reader.fail("[hypercare] business_hours", f"expected 09:00-17:00, got {span!r}") from None
        if table["business_start"] >= table["business_end"]:
            raise reader.fail("[hypercare] business_hours", "start must be before end")
    return reader.fill("hypercare", table, HypercareSettings, {
        "go_live": parse_date, "sprint_start": parse_date, "exit_date": parse_date, "timezone": _timezone,
        "business_days": parse_weekdays, "digest_time": parse_time, "weekly_summary_day": parse_weekday,
        "extra_holidays": lambda v: tuple(parse_date(d) for d in v),
        "business_start": parse_time, "business_end": parse_time,
        "holidays": lambda v: str(v).upper(),
    })


def _support(reader: Reader, raw: Any) -> SupportSettings:
    def prefix(value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"[A-Z][A-Z0-9]{0,9}", value):
            raise ValueError(f"expected 1-10 capital letters or digits like HC, got {value!r}")
        return value

    return reader.fill("support", raw, SupportSettings, {"address": _address, "ticket_prefix": prefix})


def _imap(reader: Reader, raw: Any) -> ImapSettings:
    return reader.fill("imap", raw, ImapSettings, {"security": _security})


def _smtp_out(reader: Reader, raw: Any) -> SmtpOutSettings:
    return reader.fill("smtp_out", raw, SmtpOutSettings, {"security": _security})


def _team(reader: Reader, raw: Any) -> tuple[TeamMember, ...]:
    if not isinstance(raw, list):
        raise reader.fail("[[team]]", "must be an array of tables ([[team]] entries)")

    def roles(value: Any) -> tuple[str, ...]:
        names = (value,) if isinstance(value, str) else tuple(value)
        for role in names:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        return names

    return tuple(
        reader.fill("team", entry, TeamMember, {"email": _address, "roles": roles}) for entry in raw
    )


def _stakeholders(reader: Reader, raw: Any) -> StakeholderSettings:
    def addresses(value: Any) -> tuple[str, ...]:
        value = [value] if isinstance(value, str) else value
        return tuple(_address(v) for v in value)

    return reader.fill("stakeholders", raw, StakeholderSettings, {"daily": addresses, "weekly": addresses})


def _rules(reader: Reader, raw: Any) -> RulesSettings:
    def mode(value: Any) -> str:
        if value not in ("extend", "replace"):
            raise ValueError(f"must be extend or replace, got {value!r}")
        return str(value)

    return reader.fill("rules", raw, RulesSettings, {"mode": mode})


def _sla(reader: Reader, raw: Any) -> SlaSettings:
    table = reader.table("sla", raw, {*SEVERITIES, "escalate_at", "resolution", "resolution_escalate_at"})
    defaults = SlaSettings()
    targets = dict(defaults.targets)
    for severity in SEVERITIES:
        if severity in table:
            targets[severity] = str(reader.get("sla", table, severity, str))
    escalate_at = _fractions(reader, table, "escalate_at", defaults.escalate_at)
    resolution_escalate_at = _fractions(reader, table, "resolution_escalate_at", defaults.resolution_escalate_at)
    # Per severity over the defaults (P1 same business day, P2 2 business days); "none" switches one off.
    resolution = dict(defaults.resolution)
    if "resolution" in table:
        res = reader.table("sla.resolution", table["resolution"], set(SEVERITIES))
        for severity in res:
            value = str(reader.get("sla.resolution", res, severity, str)).strip()
            if value.lower() in ("", "none", "off"):
                resolution.pop(severity, None)
            else:
                resolution[severity] = value
    return SlaSettings(targets=targets, resolution=resolution, escalate_at=escalate_at,
                       resolution_escalate_at=resolution_escalate_at)


def _fractions(reader: Reader, table: dict[str, Any], key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, list) or not value or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 5 for v in value):
        raise reader.fail(f"[sla] {key}", "must be a list of fractions like [0.5, 0.8, 1.0]")
    return tuple(sorted(float(v) for v in value))


def _feedback(value: Any) -> str:
    """Checked here so a typo stops the start; replies.ratings reads the same words."""
    phases = {"intensive", "stabilisation", "transition", "normal"}
    words = {w.strip() for w in str(value).lower().split(",") if w.strip()}
    if str(value).strip().lower() in ("on", "off", "true", "false", "yes", "no", "always", "never", ""):
        return str(value)
    unknown = sorted(words - phases)
    if unknown:
        raise ValueError(f'unknown phase {unknown[0]!r}; use "on", "off" or phases from {", ".join(sorted(phases))}')
    return str(value)


def _bounded(key: str, low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, got {value!r}")
        return value
    return check


def _confirmations(value: Any) -> str:
    if value not in ("problems", "all"):
        raise ValueError(f'must be "problems" (only when something was not done) or "all", got {value!r}')
    return str(value)


def _exit(reader: Reader, raw: Any) -> ExitSettings:
    def severities(value: Any) -> tuple[str, ...]:
        values = (value,) if isinstance(value, str) else tuple(value)
        bad = [v for v in values if v not in SEVERITIES]
        if bad or not values:
            raise ValueError(f"expected severities like [\"P1\", \"P2\"], got {value!r}")
        return values

    def fraction(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"expected a fraction between 0 and 1 like 0.9, got {value!r}")
        return float(value)

    def names(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of criterion names")
        return tuple(value)

    def sample(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
            raise ValueError(f"expected a whole number of responses between 1 and 100000 like 20, got {value!r}")
        return value

    return reader.fill("exit", raw, ExitSettings, {
        "criteria": names, "blocking_severities": severities, "backlog_severities": severities,
        "sla_target": fraction, "sla_min_sample": sample})


def _positive(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"expected a number greater than 0, got {value!r}")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise ValueError(f"expected a whole number from 0 to 1000, got {value!r}")
    return value


def _not_negative(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"expected a number of 0 or more, got {value!r}")
    return float(value)


def _hostnames(value: Any) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("expected a list of host names like [\"desk.example.com\"]")
    bad = [v for v in values if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]", v)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a host name (no port, no scheme): e.g. \"desk.example.com\"")
    return tuple(v.lower().rstrip(".") for v in values)


def _public_url(value: Any) -> str:
    """An http(s) URL users can open, or "" (no link): it is printed into mail to every reporter, so a
    line break (a forged header or paragraph), a space or a control character is refused."""
    if not isinstance(value, str):
        raise ValueError(f"must be a text in quotes like \"https://status.example.com/\", got {type(value).__name__}")
    shown = repr(value[:60]) + ("..." if len(value) > 60 else "")
    if value == "":
        return ""
    if len(value) > 2000:
        raise ValueError(f"is longer than 2000 characters: {shown}")
    if re.search(r"[\x00-\x20\x7f-\x9f\u2028\u2029<>\"\\]", value):
        raise ValueError(f"must not contain spaces, line breaks, quotes or control characters: {shown}")
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(?::\d{1,5})?(?:/\S*)?", value, flags=re.IGNORECASE):
        raise ValueError(f"must be an http:// or https:// address like \"https://status.example.com/\": {shown}")
    return value


def _limit(value: Any) -> int:
    """A limit: a whole number above zero (0 or a negative number would refuse every mail)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a whole number above 0, got {value!r}")
    return value


def _triage(reader: Reader, raw: Any) -> TriageSettings:
    def mode(value: Any) -> str:
        if value not in ("immediate", "digest"):
            raise ValueError(f'must be "immediate" (a notice per ticket) or "digest" (at digest_times), got {value!r}')
        return str(value)

    def times(value: Any) -> tuple[time, ...]:
        if not isinstance(value, list) or not 1 <= len(value) <= 24:
            raise ValueError(f'expected a list of 1 to 24 local times like ["09:00", "14:00"], got {value!r}'[:200])
        parsed = []
        for item in value:
            try:
                parsed.append(parse_time(item))
            except ValueError:  # also 25:00 (time() refuses it)
                raise ValueError(f"expected HH:MM from 00:00 to 23:59, got {item!r}"[:200]) from None
        if len(set(parsed)) != len(parsed):
            raise ValueError("a time is listed twice")
        return tuple(sorted(parsed))

    def url(value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"https?://[!-~]{1,500}", value):
            raise ValueError(f"expected an http(s) URL without spaces, got {value!r}"[:200])
        return value

    return reader.fill("triage", raw, TriageSettings, {
        "low_severity": mode, "digest_times": times, "digest_max_tickets": _bounded("digest_max_tickets", 1, 500),
        "dashboard_url": url})


def _simple(name: str, cls: type) -> Callable[[Reader, Any], Any]:
    return lambda reader, raw: reader.fill(name, raw, cls, {})


SECTIONS: dict[str, Callable[[Reader, Any], Any]] = {
    "support": _support,
    "hypercare": _hypercare,
    "database": _simple("database", DatabaseSettings),
    "imap": _imap,
    "smtp_in": lambda reader, raw: reader.fill("smtp_in", raw, SmtpInSettings, {
        "protocol": _protocol, "max_transfers": _limit}),
    "smtp_out": _smtp_out,
    "dashboard": lambda reader, raw: reader.fill("dashboard", raw, DashboardSettings, {
        "hostnames": _hostnames, "status_days": _bounded("status_days", 1, 90), "public_status_url": _public_url}),
    "team": _team,
    "stakeholders": _stakeholders,
    "rules": _rules,
    "sla": _sla,
    "intake": lambda reader, raw: reader.fill("intake", raw, IntakeSettings, dict.fromkeys(
        ("max_attachment_bytes", "flood_per_hour", "max_message_bytes", "max_header_bytes", "max_headers",
         "max_header_field_bytes", "max_encoded_words", "max_mime_depth", "max_mime_parts"), _limit)),
    "notifier": lambda reader, raw: reader.fill("notifier", raw, NotifierSettings,
                                                {"feedback": _feedback, "confirmations": _confirmations,
                                                 "page_storm_pages": _limit, "page_storm_minutes": _limit}),
    "replies": lambda reader, raw: reader.fill("replies", raw, ReplySettings, {
        "token_days": _positive, "secret_grace_hours": _not_negative, "cc_limit": _count}),
    "exit": _exit,
    "triage": _triage,
    "incidents": lambda reader, raw: reader.fill("incidents", raw, IncidentSettings, {
        "window_minutes": _bounded("window_minutes", 1, 24 * 60),
        "min_shared_terms": _bounded("min_shared_terms", 0, 20),
        "min_shared_terms_p1": _bounded("min_shared_terms_p1", 0, 20)}),
}
