"""Every regex of a rule set, found with two compiled scans instead of one search per regex.

Why: Python's ``re`` has no DFA, so an alternation of N regexes costs about N tries at
every character.  Most rule regexes contain a literal they cannot match without
("ORA-" in ``ORA-\\d{5}``); those literals go into one literal pattern (fast: ``re``
skips ahead to the characters literals start with), and a regex is run only when its
literal is in the text.  Regexes without such a literal share one combined pattern.
"""

from __future__ import annotations

import re
from typing import Any

from classifier.text import Negation

MIN_LITERAL = 3
MAX_HITS = 3
Hits = dict[int, list[tuple[str, str, bool]]]  # regex id -> [(field, matched text, negated)]


def required_literal(pattern: re.Pattern[str]) -> str | None:
    """The longest literal run that every match must contain (lower-cased), if one can be seen."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed: Any = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 - an unexpected parser shape only costs speed, never correctness
        return None
    items = list(parsed)
    # A single group around everything: look inside.
    while len(items) == 1 and str(items[0][0]) == "SUBPATTERN":
        items = list(items[0][1][-1])
    best, run = "", ""
    for op, value in items:
        if str(op) == "LITERAL":
            run += chr(value)
            best = max(best, run, key=len)
        else:
            run = ""
    return best.lower() if len(best) >= MIN_LITERAL else None


class RegexScanner:
    def __init__(self, regexes: list[re.Pattern[str]], negation: Negation) -> None:
        self.regexes = regexes
        self.negation = negation
        by_literal: dict[str, list[int]] = {}
        rest: list[int] = []
        for rid, regex in enumerate(regexes):
            literal = required_literal(regex)
            if literal is None:
                rest.append(rid)
            else:
                by_literal.setdefault(literal, []).append(rid)
        # A literal found also proves every literal inside it (longest first wins at one spot).
        self._by_literal = {
            lit: sorted({rid for other, rids in by_literal.items() if other in lit for rid in rids})
            for lit in by_literal
        }
        ordered = sorted(by_literal, key=len, reverse=True)
        self._literals = re.compile("|".join(re.escape(lit) for lit in ordered)) if ordered else None
        self._rest = rest
        self._combined = (
            re.compile("|".join(f"(?P<r{rid}>{regexes[rid].pattern})" for rid in rest), re.IGNORECASE)
            if rest else None
        )

    def scan(self, text: str, field: str, out: Hits) -> None:
        if self._literals is not None:
            self._scan_literals(text, field, out)
        if self._combined is not None:
            self._scan_combined(text, field, out)

    def _scan_literals(self, text: str, field: str, out: Hits) -> None:
        assert self._literals is not None
        lowered = text.lower()
        candidates: set[int] = set()
        pos, search = 0, self._literals.search
        while (found := search(lowered, pos)) is not None:
            candidates.update(self._by_literal[found.group()])
            pos = found.start() + 1
        for rid in sorted(candidates):
            for match in self.regexes[rid].finditer(text):
                if match.end() > match.start():
                    self._record(rid, match.group(), text, match.start(), field, out)
                    if len(out[rid]) >= MAX_HITS:
                        break

    def _scan_combined(self, text: str, field: str, out: Hits) -> None:
        """One scan; at each match the branches after the winning one are tried at the same spot too."""
        assert self._combined is not None
        search, rest = self._combined.search, self._rest
        pos, n = 0, len(text)
        while pos <= n:
            found = search(text, pos)
            if found is None:
                return
            start = found.start()
            first = int(str(found.lastgroup)[1:])
            self._record(first, found.group(), text, start, field, out)
            for rid in rest[rest.index(first) + 1:]:
                other = self.regexes[rid].match(text, start)
                if other is not None and other.end() > start:
                    self._record(rid, other.group(), text, start, field, out)
            pos = start + 1

    def _record(self, rid: int, matched: str, text: str, start: int, field: str, out: Hits) -> None:
        hits = out.setdefault(rid, [])
        if len(hits) < MAX_HITS:
            hits.append((field, " ".join(matched.split())[:60], self.negation.before_text(text[:start])))
