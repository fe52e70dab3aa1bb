"""Every regex of a rule set, found with two compiled scans instead of one search per regex.

Why: Python's ``re`` has no DFA, so an alternation of N regexes costs about N tries at
every character.  Most rule regexes contain a literal they cannot match without
("ORA-" in ``ORA-\\d{5}``); those literals go into one literal pattern (fast: ``re``
skips ahead to the characters literals start with), and a regex is run only when its
literal is in the text.  Regexes without such a literal share one combined pattern.

A regex whose literal is a common word ("of", "how") would still run on most mail, and
running one costs several microseconds; so it also waits for its other needs, each a cheap
C-level test: a second literal elsewhere in it (the "?" of a question, "can" after "nobody")
and a digit when it cannot match without one (``\\d+ of us``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import compress
from typing import Any, NamedTuple

from classifier.text import Negation

MIN_LITERAL = 3
MIN_ALTERNATIVE = 2  # each literal of a set of alternatives ("how|why|où"): shorter only costs speed
MAX_ALTERNATIVES = 200
MAX_HITS = 3
MAX_NEED_LITERALS = 16  # a longer set of alternatives costs more "in" tests than the regex it would spare
CHUNK_CACHE_LIMIT = 100_000  # distinct chunks remembered with the literals in them; when full it starts afresh
MAX_CHUNK_CHARS = 64  # longer chunks (a pasted token, a URL) are looked into but not remembered
MAX_NEW_CHUNKS = 200  # a text with more unseen chunks is scanned whole: cheaper than learning them
_DIGIT = re.compile(r"\d")
_Entry = tuple[tuple[int, ...], tuple[str, ...]]  # (regex ids in a chunk, spaced literals it may be part of)


def _case_traps() -> re.Pattern[str] | None:
    """Characters for which "is the lower-cased literal in the lower-cased text" is not what ``re.IGNORECASE`` does.

    ``re`` also matches "ſ" to "s", "ı" to "i", "ς" to "σ" (``re._casefix``), and "İ" lower-cases to "i" plus a
    combining dot.  A text or literal with one of them skips the extra needs (the regex just runs).
    """
    try:
        from re import _casefix  # type: ignore[attr-defined]

        extra: dict[int, tuple[int, ...]] = _casefix._EXTRA_CASES
        chars = {0x307} | {c for key, values in extra.items() for c in (key, *values) if c > 0x7F}
    except Exception:  # noqa: BLE001 - without the table only ASCII text uses the extra needs
        return None
    return re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(chars)) + "]")


_CASE_TRAPS = _case_traps()
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
    items = _parsed(pattern)
    return None if items is None else _best(_literal_sets(items))


def _literal_sets(items: list[Any]) -> list[frozenset[str]]:
    """For each top-level item a match must pass, the literals (lower-cased) that part of a match starts with."""
    found = []
    for start in range(len(items)):
        expansion = _expand(items[start:], [("", True)])
        if expansion is not None:
            found.append(frozenset(text.lower() for text, _ in expansion))
    return found


def _best(sets: list[frozenset[str]]) -> frozenset[str] | None:
    """The set the literal scan looks for: the longest shortest literal, then the fewest alternatives."""
    best: frozenset[str] | None = None
    for texts in sets:
        shortest = min((len(t) for t in texts), default=0)
        if shortest < (MIN_LITERAL if len(texts) == 1 else MIN_ALTERNATIVE):
            continue
        if best is None or (shortest, -len(texts)) > (min(len(t) for t in best), -len(best)):
            best = texts
    return best


def _parsed(pattern: re.Pattern[str]) -> list[Any] | None:
    """The top-level items of *pattern* as ``re``'s parser sees them (None: the parser refused)."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        return list(_parser.parse(pattern.pattern, pattern.flags))
    except Exception:  # noqa: BLE001 - an unexpected parser shape only costs speed, never correctness
        return None


class Needs(NamedTuple):
    """What a regex cannot match without: the scan's literal set, and the cheaper tests run after it."""

    literals: frozenset[str] | None  # one of these is in every match (None: none seen, it joins the combined scan)
    others: tuple[frozenset[str], ...]  # more such sets, tested with "in" before the regex runs
    digit: bool  # every match has a digit
    from_digit: bool  # every match starts with one: the search starts at the first digit


def needs(pattern: re.Pattern[str]) -> Needs:
    """The needs of *pattern*, from one parse."""
    items = _parsed(pattern)
    if items is None:
        return Needs(None, (), False, False)
    sets = _literal_sets(items)
    best = _best(sets)
    return Needs(best, _others(sets, best), any(_digit_item(op, value) for op, value in items),
                 _first_is_digit(items))


def _others(sets: list[frozenset[str]], chosen: frozenset[str] | None) -> tuple[frozenset[str], ...]:
    """Sets of literals besides *chosen*, each of which every match contains one of.

    Why: *chosen* is only the best single set (what the literal scan looks for); a regex also
    needing the "?" at its end or the verb after its subject can be skipped by a few ``in`` tests.
    A set implied by another (the tails "obody", "body" of "nobody") and long sets are left out.
    """
    if chosen is None:
        return ()
    found = [chosen]
    for texts in sets:
        if "" in texts or len(texts) > MAX_NEED_LITERALS or not _plain_case(texts):
            continue
        # Every literal of an earlier set containing one of these: the earlier set already proves it.
        if not any(all(any(t in k for t in texts) for k in kept) for kept in found):
            found.append(texts)
    return tuple(found[1:])


def _plain_case(literals: frozenset[str]) -> bool:
    """True when ``in`` on lower-cased text finds these literals exactly where ``re.IGNORECASE`` would."""
    joined = "".join(literals)
    return joined.isascii() or (_CASE_TRAPS is not None and _CASE_TRAPS.search(joined) is None)


def _has_each(lowered: str, literal_sets: tuple[frozenset[str], ...]) -> bool:
    """True when *lowered* holds a literal of each set (loops, not generators: this runs per regex per text)."""
    for literals in literal_sets:
        for literal in literals:
            if literal in lowered:
                break
        else:
            return False
    return True


def _first_is_digit(items: Any) -> bool:
    """True when every match of *items* begins with a digit (``\\b\\d+ of us``): it is searched from the first.

    ``finditer(text, pos)`` still sees the characters before *pos* for ``\\b`` and ``^``, so no match changes.
    """
    for op, value in items:
        name = str(op)
        if name == "AT":  # \b, ^: no character
            continue
        if name in ("LITERAL", "IN"):
            return _digit_item(op, value)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            return value[0] >= 1 and _first_is_digit(value[2])
        if name == "SUBPATTERN":
            return _first_is_digit(value[-1])
        if name == "BRANCH":
            return all(_first_is_digit(branch) for branch in value[1])
        return False
    return False


def _digit_item(op: Any, value: Any) -> bool:
    """Whether one parsed item, wherever it matches, consumes at least one digit."""
    name = str(op)
    if name == "LITERAL":
        return chr(value) in "0123456789"
    if name == "IN":
        return bool(value) and all(
            (str(o) == "CATEGORY" and str(v) == "CATEGORY_DIGIT")
            or (str(o) == "LITERAL" and chr(v) in "0123456789")
            or (str(o) == "RANGE" and 48 <= v[0] <= v[1] <= 57)
            for o, v in value
        )
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        low, _, sub = value
        return low >= 1 and any(_digit_item(o, v) for o, v in sub)
    if name in ("SUBPATTERN", "ATOMIC_GROUP"):
        sub = value[-1] if name == "SUBPATTERN" else value
        return any(_digit_item(o, v) for o, v in sub)
    if name == "BRANCH":
        return all(any(_digit_item(o, v) for o, v in branch) for branch in value[1])
    return False


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


def _spaced_key(literal: str) -> tuple[str, str] | None:
    """How chunks (``str.split``) show a literal: ("", "") it has no white space (it lies inside one chunk);
    ("_exact", word) a chunk is that word, ("_prefix"/"_suffix", word) a chunk begins/ends with it; None: only
    white space.  The key word is the longest of its words, a whole chunk preferred (the rarest test).
    """
    words = literal.split()
    if len(words) == 1 and words[0] == literal:
        return ("", "")
    if not words:
        return None
    lead, trail = literal[0].isspace(), literal[-1].isspace()
    keys = []
    for i, word in enumerate(words):
        left, right = i > 0 or lead, i < len(words) - 1 or trail
        kind = "_exact" if left and right else "_prefix" if left else "_suffix"
        keys.append((kind == "_exact", len(word), kind, word))
    _, _, kind, word = max(keys)
    return (kind, word)


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
    """Which regexes match a text: each runs only when a literal it needs is there (one trie scan
    finds them all) and its other needs (``needs``) are met."""

    def __init__(self, regexes: list[re.Pattern[str]], negation: Negation) -> None:
        self.regexes = regexes
        self.negation = negation
        by_literal: dict[str, list[int]] = {}
        rest: list[int] = []
        self._needs: dict[int, Needs] = {}  # rid -> the tests after the literal scan, when it has any
        for rid, regex in enumerate(regexes):
            found = needs(regex)
            if found.literals is None:
                rest.append(rid)
                continue
            for literal in found.literals:
                by_literal.setdefault(literal, []).append(rid)
            if found.others or found.digit:
                self._needs[rid] = found
        # A literal found also proves every literal inside it (longest first wins at one spot).
        self._by_literal = {
            lit: sorted({rid for other, rids in by_literal.items() if other in lit for rid in rids})
            for lit in by_literal
        }
        # Not a look-ahead (which ``re`` tries at every character): the trie itself, so ``re`` skips
        # to the characters a literal starts with; ``literals_in`` restarts one character later.
        self._literals = re.compile(f"({trie_pattern(by_literal)})") if by_literal else None
        self._chunks: dict[str, _Entry | bool] = {}  # False: the chunk holds no literal
        self._exact: dict[str, list[str]] = {}
        self._prefix: dict[str, list[str]] = {}
        self._suffix: dict[str, list[str]] = {}
        loose: list[str] = []
        for literal in by_literal:
            key = _spaced_key(literal)
            if key is None:
                loose.append(literal)
            elif key[0]:
                getattr(self, key[0]).setdefault(key[1], []).append(literal)
        self._loose = tuple(loose)
        self._prefixes, self._suffixes = tuple(self._prefix), tuple(self._suffix)
        self._rest = rest
        self._combined = (
            re.compile("|".join(f"(?P<r{rid}>{regexes[rid].pattern})" for rid in rest), re.IGNORECASE)
            if rest else None
        )

    def scan(self, text: str, field: str, out: Hits) -> None:
        """Record the hits of every regex in *text* into *out*."""
        if self._literals is not None:
            self._scan_literals(text, field, out)
        if self._combined is not None:
            self._scan_combined(text, field, out)

    def literals_in(self, lowered: str) -> set[str]:
        """The distinct literals in *lowered*: at every spot the longest one starting there (overlaps too)."""
        assert self._literals is not None
        found: set[str] = set()
        search = self._literals.search
        match = search(lowered)
        while match is not None:
            found.add(match.group())
            match = search(lowered, match.start() + 1)
        return found

    def literal_rids(self, lowered: str) -> set[int]:
        """Ids of the regexes one of whose literals is in *lowered*: the same as scanning it with ``literals_in``.

        Why by chunks (the text split at white space): a literal without white space lies inside one
        chunk, and chunks repeat from mail to mail, so what each holds is found once and remembered.
        A literal with white space ("no one") is tested with ``in``, only when a chunk is its key word
        (or begins or ends with it, for its first and last word).  A text with many new chunks is scanned.
        """
        by_literal = self._by_literal
        chunks = lowered.split()
        entries: list[_Entry | bool | None] | None = list(map(self._chunks.get, chunks))  # False: holds nothing
        if None in entries:  # chunks not seen before (or since the memo restarted)
            entries = self._learn(chunks, entries)
            if entries is None:
                return {rid for literal in self.literals_in(lowered) for rid in by_literal[literal]}
        found: set[int] = set()
        spaced: set[str] = set()
        for rids, literals in compress(entries, entries):  # type: ignore[misc]
            found.update(rids)
            spaced.update(literals)
        for literal in (*spaced, *self._loose):
            if literal in lowered:
                found.update(by_literal[literal])
        return found

    def _learn(self, chunks: list[str], entries: list[_Entry | bool | None]) -> list[_Entry | bool | None] | None:
        """*entries* (the memo's answer per chunk, None: unknown) completed, the new chunks remembered.

        None when there are too many new chunks to learn.  Bounded: chunks over MAX_CHUNK_CHARS are not
        remembered, and the memo restarts when it would overflow.  The answer never depends on the memo
        still holding a chunk (another thread may restart it).
        """
        table = self._chunks
        missing = set(chunks).difference(table)
        if len(missing) > MAX_NEW_CHUNKS:
            return None
        new = {chunk: self._chunk_entry(chunk) for chunk in missing}
        if len(table) + len(new) > CHUNK_CACHE_LIMIT:
            table.clear()
        table.update((chunk, entry) for chunk, entry in new.items() if len(chunk) <= MAX_CHUNK_CHARS)
        return [entry if entry is not None else new[chunk] if chunk in new else self._chunk_entry(chunk)
                for entry, chunk in zip(entries, chunks, strict=True)]

    def _chunk_entry(self, chunk: str) -> _Entry | bool:
        """Regex ids of the literals inside *chunk*, and the spaced literals it may be the key of."""
        assert self._literals is not None
        search, by_literal = self._literals.search, self._by_literal
        rids: set[int] = set()
        match = search(chunk)
        while match is not None:
            rids.update(by_literal[match.group()])
            match = search(chunk, match.start() + 1)
        spaced = list(self._exact.get(chunk, ()))
        if chunk.startswith(self._prefixes):
            spaced += [lit for key, lits in self._prefix.items() if chunk.startswith(key) for lit in lits]
        if chunk.endswith(self._suffixes):
            spaced += [lit for key, lits in self._suffix.items() if chunk.endswith(key) for lit in lits]
        return (tuple(sorted(rids)), tuple(spaced)) if rids or spaced else False

    def _scan_literals(self, text: str, field: str, out: Hits) -> None:
        lowered = text.lower()
        all_needs = self._needs
        first_digit: int | None = None  # where the first digit is, -1: none (looked up once per text)
        plain: bool | None = None  # no character of _CASE_TRAPS: the literal needs may be tested with "in"
        for rid in sorted(self.literal_rids(lowered)):
            start = 0
            needs = all_needs.get(rid)
            if needs is not None:
                _, literal_sets, digit, from_digit = needs
                if digit:
                    if first_digit is None:
                        found = _DIGIT.search(text)
                        first_digit = -1 if found is None else found.start()
                    if first_digit < 0:
                        continue
                    if from_digit:
                        start = first_digit
                if literal_sets and plain is None:
                    plain = lowered.isascii() or (_CASE_TRAPS is not None and _CASE_TRAPS.search(lowered) is None)
                if plain and not _has_each(lowered, literal_sets):
                    continue
            for match in self.regexes[rid].finditer(text, start):
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
