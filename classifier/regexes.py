"""Every regex of a rule set, found with two compiled scans instead of one search per regex.

Why: Python's ``re`` has no DFA, so an alternation of N regexes costs about N tries at
every character.  Most rule regexes contain a literal they cannot match without
("ORA-" in ``ORA-\\d{5}``); those literals go into one literal pattern (fast: ``re``
skips ahead to the characters literals start with), and a regex is run only when its
literal is in the text.  Regexes without such a literal share one combined pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from classifier.text import Negation

MIN_LITERAL = 3
MIN_ALTERNATIVE = 2  # each literal of a set of alternatives ("how|why|où"): shorter only costs speed
MAX_ALTERNATIVES = 200
MAX_HITS = 3
Hits = dict[int, list[tuple[str, str, bool]]]  # regex id -> [(field, matched text, negated)]
_Expansion = list[tuple[str, bool]]  # (literal text so far, still open: the next item may extend it)


def required_literal(pattern: re.Pattern[str]) -> str | None:
    """The longest literal run that every match must contain (lower-cased), if one can be seen."""
    found = required_literals(pattern)
    return next(iter(found)) if found is not None and len(found) == 1 else None


def required_literals(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Literals (lower-cased) of which every match contains at least one, if such a set can be seen.

    Why a set: rule regexes often start with an alternation of words ("(?:nobody|no one|none of us)
    ... can sign in"); no single literal is required, but one of the alternatives is.  A regex with
    such a set is run only on mail containing one of them, instead of joining the combined pattern
    that is tried at every character of every mail.
    """
    try:
        from re import _parser  # type: ignore[attr-defined]

        parsed: Any = _parser.parse(pattern.pattern, pattern.flags)
    except Exception:  # noqa: BLE001 - an unexpected parser shape only costs speed, never correctness
        return None
    items = list(parsed)
    best: frozenset[str] | None = None
    for start in range(len(items)):
        expansion = _expand(items[start:], [("", True)])
        if expansion is None:
            continue
        texts = frozenset(text.lower() for text, _ in expansion)
        shortest = min((len(t) for t in texts), default=0)
        if shortest < (MIN_LITERAL if len(texts) == 1 else MIN_ALTERNATIVE):
            continue
        if best is None or (shortest, -len(texts)) > (min(len(t) for t in best), -len(best)):
            best = texts
    return best


def _expand(items: list[Any], current: _Expansion) -> _Expansion | None:
    """The literal texts a match of *items* starts with, given the texts before (None: too many)."""
    for op, value in items:
        if not any(is_open for _, is_open in current):
            return current
        name = str(op)
        if name == "LITERAL":
            current = [(text + chr(value), True) if is_open else (text, False) for text, is_open in current]
        elif name == "AT":
            continue
        elif name == "SUBPATTERN":
            grown = _grow(current, [list(value[-1])])
            if grown is None:
                return None
            current = grown
        elif name == "BRANCH":
            grown = _grow(current, [list(branch) for branch in value[1]])
            if grown is None:
                return None
            current = grown
        elif name == "IN" and value and all(str(o) == "LITERAL" for o, _ in value):
            grown = _grow(current, [[(o, v)] for o, v in value])
            if grown is None:
                return None
            current = grown
        else:
            current = [(text, False) for text, _ in current]
    return current


def _grow(current: _Expansion, alternatives: list[list[Any]]) -> _Expansion | None:
    """Each open text extended by each alternative's own expansion."""
    grown: _Expansion = []
    for text, is_open in current:
        if not is_open:
            grown.append((text, False))
            continue
        for alternative in alternatives:
            expansion = _expand(alternative, [("", True)])
            if expansion is None:
                return None
            grown.extend((text + tail, tail_open) for tail, tail_open in expansion)
        if len(grown) > MAX_ALTERNATIVES:
            return None
    return grown


def trie_pattern(literals: Iterable[str]) -> str:
    """One pattern for many literals, shaped as their trie: the longest literal at a spot wins.

    Why not ``a|b|c``: ``re`` tries the branches of a flat alternation one by one at every
    character, so hundreds of literals cost hundreds of tries per character; in trie form a
    character selects one branch, and the cost follows the literal's length.
    """
    root: dict[str, Any] = {}
    for literal in literals:
        node = root
        for char in literal:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a literal

    def pattern(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return pattern(root)


class RegexScanner:
    def __init__(self, regexes: list[re.Pattern[str]], negation: Negation) -> None:
        self.regexes = regexes
        self.negation = negation
        by_literal: dict[str, list[int]] = {}
        rest: list[int] = []
        for rid, regex in enumerate(regexes):
            literals = required_literals(regex)
            if literals is None:
                rest.append(rid)
            else:
                for literal in literals:
                    by_literal.setdefault(literal, []).append(rid)
        # A literal found also proves every literal inside it (longest first wins at one spot).
        self._by_literal = {
            lit: sorted({rid for other, rids in by_literal.items() if other in lit for rid in rids})
            for lit in by_literal
        }
        self._literals = re.compile(f"(?=({trie_pattern(by_literal)}))") if by_literal else None
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
        # The pattern is a lookahead: one C-level scan yields the longest literal starting at every
        # position (overlaps included); only the distinct ones matter.
        by_literal = self._by_literal
        candidates = {rid for literal in set(self._literals.findall(lowered)) for rid in by_literal[literal]}
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
