"""Reading rule files: TOML -> validated ``Rule`` objects, every mistake one line.

Why two passes (read all files, then build): in ``extend`` mode a site file may
replace a built-in rule by using its name, or switch it off with ``enabled = false``;
merging the raw tables first means the matcher only ever holds the words of rules
that are really in force.
"""

from __future__ import annotations

import functools
import re
import reprlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier.conditions import Builder, Condition, ConditionError, parse_table
from classifier.matrix import EMPTY, SCOPES, Matrix, MatrixError, merge_matrix
from config import ROLES, SEVERITIES
from core.errors import UserError

DEFAULT_RULES = Path(__file__).with_name("default_rules.toml")
RULE_KEYS = frozenset({
    "name", "description", "severity", "severity_floor", "severity_ceiling", "role", "tags",
    "min_score", "enabled", "hit", "scope", "ceiling_spares",
})
FILE_KEYS = ("rule", "negation", "matrix")
NEGATION_KEYS = ("words", "exceptions", "window")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,79}")


class RuleFileError(UserError):
    """A rule file cannot be used; the message is one line naming the file, the rule and the fix."""


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    severity: str | None
    severity_floor: str | None
    severity_ceiling: str | None
    role: str | None
    tags: tuple[str, ...]
    min_score: float
    condition: Condition
    source: str
    index: int  # position in the merged rule list: ties are broken by it
    hit: str | None = None  # what is hit (a row of the matrix)
    scope: str | None = None  # who is affected (one of matrix.SCOPES)
    # Rows of the matrix this rule's ceiling does not lower: "thanks, it works again" closes an outage, not
    # the data exposure that happened (eleventh round).
    ceiling_spares: tuple[str, ...] = ()

    @property
    def severity_effect(self) -> str | None:
        return self.severity or self.severity_floor or self.severity_ceiling


@dataclass(frozen=True)
class NegationSettings:
    words: tuple[str, ...]
    exceptions: tuple[str, ...]
    window: int


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    builder: Builder
    negation: NegationSettings
    sources: tuple[str, ...]
    matrix: Matrix = EMPTY


def read_rule_files(paths: Iterable[str | Path]) -> RuleSet:
    """Load *paths*; later files extend earlier ones (same name replaces, ``enabled = false`` drops)."""
    return _compile_rule_files(tuple((str(path), _read_text(Path(path))) for path in paths))


@functools.lru_cache(maxsize=8)
def _compile_rule_files(files: tuple[tuple[str, str], ...]) -> RuleSet:
    """The RuleSet of *files* (source, text), built once per distinct set of texts.

    Why cached: building the matcher of the built-in rules costs ~40 ms, paid by every ``App`` (each
    command, each test's desk); the RuleSet is immutable after the build, so equal texts may share it.
    Keyed by the texts, not the paths, so an edited file is read afresh.
    """
    merged: dict[str, tuple[str, dict[str, Any]]] = {}
    words: list[str] = []
    exceptions: list[str] = []
    window = 3
    sources: list[str] = []
    matrix = EMPTY
    for source, text in files:
        sources.append(source)
        data = _parse_toml(text, source)
        if "matrix" in data:
            try:
                matrix = merge_matrix(matrix, data["matrix"])
            except MatrixError as exc:
                raise RuleFileError(f"{source}: {exc}") from None
        negation = data.get("negation", {})
        if not isinstance(negation, dict):
            raise RuleFileError(f"{source}: [negation] must be a table with {', '.join(NEGATION_KEYS)}")
        unknown = sorted(set(negation) - set(NEGATION_KEYS))
        if unknown:
            raise RuleFileError(
                f"{source}: [negation]: unknown key {unknown[0]!r}; use {', '.join(NEGATION_KEYS)}"
            )
        try:
            words += _string_list(negation.get("words", []), "words")
            exceptions += _string_list(negation.get("exceptions", []), "exceptions")
        except ValueError as exc:
            raise RuleFileError(f"{source}: [negation] {exc}") from None
        if "window" in negation:
            window = negation["window"]
            if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 10:
                raise RuleFileError(f"{source}: [negation] window must be a number 0-10, got {window!r}")
        seen: set[str] = set()
        for position, table in enumerate(_rule_tables(data, source), start=1):
            name = table.get("name")
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise RuleFileError(
                    f"{source}: rule #{position}: name {name!r} missing or invalid; "
                    "use lower-case letters, digits, - _ ."
                )
            if name in seen:
                raise RuleFileError(f"{source}: rule {name!r}: defined twice in this file; rename one")
            seen.add(name)
            if table.get("enabled", True) is False:
                merged.pop(name, None)
                continue
            merged[name] = (source, table)
    builder = Builder()
    rules = tuple(_build(src, table, builder, i, matrix) for i, (src, table) in enumerate(merged.values()))
    return RuleSet(rules, builder, NegationSettings(tuple(words), tuple(exceptions), window), tuple(sources),
                   matrix)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleFileError(f"{path}: rule file not found; fix the path ([rules] file or argument)") from None
    except IsADirectoryError:
        raise RuleFileError(f"{path}: is a directory; give a .toml rule file") from None
    except OSError as exc:
        raise RuleFileError(f"{path}: cannot read rule file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise RuleFileError(f"{path}: rule file is not UTF-8; save it as UTF-8") from None
    except ValueError:  # a NUL in the configured path
        raise RuleFileError(f"{path!r:.200}: not a usable file name; fix [rules] file") from None


def _parse_toml(text: str, path: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleFileError(f"{path}: invalid TOML ({exc}); fix the syntax") from None
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise RuleFileError(
            f"{path}: unknown top-level key {unknown[0]!r}; a rule file has [[rule]] tables and [negation]"
        )
    return data


def _rule_tables(data: dict[str, Any], source: str) -> list[dict[str, Any]]:
    rules = data.get("rule", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise RuleFileError(f"{source}: rules must be [[rule]] tables")
    return rules


def _string_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return list(value)


def _build(source: str, table: dict[str, Any], builder: Builder, index: int, matrix: Matrix) -> Rule:  # noqa: C901 - one check per key, in the order of the README
    name = table["name"]

    def fail(message: str) -> RuleFileError:
        return RuleFileError(f"{source}: rule {name!r}: {message}")

    def severity(key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if value not in SEVERITIES:
            raise fail(f"{key} {value!r} unknown; use one of {', '.join(SEVERITIES)}")
        return str(value)

    description = table.get("description", "")
    if not isinstance(description, str) or not description.strip():
        raise fail("description missing; say in one line what the rule catches")
    role = table.get("role")
    if role is not None and role not in ROLES:
        raise fail(f"role {role!r} unknown; use one of {', '.join(ROLES)}")
    tags = table.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise fail("tags must be a list of strings")
    min_score = table.get("min_score", 1)
    if isinstance(min_score, bool) or not isinstance(min_score, int | float) or min_score < 0:
        raise fail(f"min_score must be a number >= 0, got {min_score!r}")
    effects = {k: severity(k) for k in ("severity", "severity_floor", "severity_ceiling")}
    hit, scope = table.get("hit"), table.get("scope")
    if hit is not None and (not isinstance(hit, str) or hit not in matrix.rows):
        known = ", ".join(matrix.rows) or "none: add a [matrix] table"
        raise fail(f"hit {hit!r} is not a row of the matrix; use one of {known}")
    if scope is not None and (not isinstance(scope, str) or scope not in SCOPES):
        raise fail(f"scope {scope!r} unknown; use one of {', '.join(SCOPES)}")
    spares = table.get("ceiling_spares", [])
    if isinstance(spares, str):
        spares = [spares]
    if not isinstance(spares, list) or not all(isinstance(r, str) and r in matrix.rows for r in spares):
        shown = reprlib.repr(spares)  # a megabyte value is not echoed whole
        raise fail(f"ceiling_spares {shown} must list rows of the matrix ({', '.join(matrix.rows) or 'none'})")
    if spares and effects["severity_ceiling"] is None:
        raise fail("ceiling_spares without severity_ceiling; add the ceiling or drop ceiling_spares")
    if not any(effects.values()) and role is None and not tags and hit is None and scope is None:
        raise fail("no effect; set hit, scope, severity, severity_floor, severity_ceiling, role or tags")
    if table.get("enabled", True) is not True:
        raise fail("enabled must be true or false")
    conditions = {k: v for k, v in table.items() if k not in RULE_KEYS}
    if not conditions:
        raise fail("no condition; add keywords, regex, sender, header, attachment, time, any/all/not")
    try:
        condition = parse_table(conditions, builder)
    except ConditionError as exc:
        raise fail(str(exc)) from None
    return Rule(
        name=name,
        description=" ".join(description.split()),
        severity=effects["severity"],
        severity_floor=effects["severity_floor"],
        severity_ceiling=effects["severity_ceiling"],
        role=role,
        tags=tuple(tags),
        min_score=float(min_score),
        condition=condition,
        source=source,
        index=index,
        hit=hit,
        scope=scope,
        ceiling_spares=tuple(spares),
    )
