"""Text normalisation and the one compiled phrase matcher.

Why a token trie and not one regex per keyword: every keyword and phrase of every
rule goes into a single trie of normalised words, built once when the rules load.
Classifying a mail then walks the mail's words once; the cost grows with the length
of the mail, not with the number of rules, so 1,000 rules cost about what 10 cost.
Words (not characters) are the unit because keywords are whole words by contract:
"down" must not match "download", and "drop-down" must be seen as the two words
"drop down" so a rule can say that phrase is not an outage.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import compress
from typing import NamedTuple

from classifier.word_forms import FORMS_MARK, SHARED, WordForms

# Words, plus the punctuation that ends a clause: negation never reaches across one.
_TOKEN = re.compile(r"(\w+)|[.!?;:,()\[\]\n]|\s[-\u2013\u2014]\s")
_PHRASE_TOKEN = re.compile(r"\w+[*~]?")
# Each of these three starts with a character ("\n", a blank, an apostrophe) so ``re`` skips ahead to the
# places it can match instead of trying every position; the context sits in look-behinds.  Same matches as
# the plain spellings ("[ \t]*\n(?!...)", "\b(l|qu)'(?=\w)" replaced by "l ", "(?<=\w)'(?=\w)"), 3-5x faster.
# A blank line may hold a carriage return ("\n\r\n", left in a forward's body): it is a blank line here as it is
# to the paragraph split (``classifier.paragraphs``), so a line break before it is no soft break.
_SOFT_BREAK = re.compile(r"(?: [ \t]*\n|\t[ \t]*\n|\n)(?![ \t\r]*(?:[A-Z\u00c0-\u00de]|[-*\u2022>]|\d|\n|$))[ \t]*")
_ELISION = re.compile(r"['\u2019](?=\w)(?:(?<=\b[ldnjsctmLDNJSCTM].)|(?<=\b[qQ]u.))")
_APOSTROPHE = re.compile(r"['\u2019](?<=\w.)(?=\w)")
_COMBINING = re.compile(r"[\u0300-\u036f]")
BOUNDARY = ""
MIN_PREFIX = 3
START_CACHE_LIMIT = 100_000  # distinct words remembered; a flood of new words only restarts the memo


def normalize(text: str) -> str:
    """Case- and accent-insensitive form: "Gelöscht" and "geloscht" compare equal, "can't" is "cant".

    A French elision is two words ("l'interface" is "l interface"), so "interface" is found in it.
    """
    if "'" in text or "\u2019" in text:
        text = _APOSTROPHE.sub("", _ELISION.sub(" ", text))
    if text.isascii():
        return text.lower()
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text)).casefold()


def tokenize(text: str) -> list[str]:
    """Normalised words of *text*; clause boundaries are the empty string.

    A line break inside a sentence (mail clients wrap at ~72 characters) is a space, so
    "can't\nlog in" is still the phrase; a break before a capital, a list bullet, a number or
    an empty line still ends the clause, so "No rush\nThe CRM is down" is not negated.
    """
    if "\n" in text:
        text = _SOFT_BREAK.sub(" ", text)
    return _TOKEN.findall(normalize(text))


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """The words of a keyword as written in a rule file (``*`` marks a word prefix, ``~`` all word forms)."""
    return tuple(_PHRASE_TOKEN.findall(normalize(phrase)))


class _Node:
    __slots__ = ("branchy", "exact", "forms", "prefix", "prefix_lens", "terminals")

    def __init__(self) -> None:
        self.exact: dict[str, _Node] = {}
        self.prefix: dict[str, _Node] = {}
        self.forms: dict[str, _Node] = {}  # stem key ("en:delet") -> node: any form of the word
        self.prefix_lens: tuple[int, ...] = ()
        self.terminals: tuple[int, ...] = ()
        self.branchy = False  # a prefix or word-form child: the next word needs more than one dict lookup


class PhraseHit(NamedTuple):
    """One occurrence of a phrase: token span [start, end) in one field.

    A named tuple rather than a frozen dataclass: a mail has a dozen hits, and the dataclass's
    field-by-field ``__init__`` cost more than finding the hit in the trie.
    """

    phrase: int
    field: str
    start: int
    end: int
    text: str
    negated: bool


class PhraseMatcher:
    """All phrases of a rule set in one word trie; ``add`` while loading, then ``find`` per mail."""

    def __init__(self, forms: WordForms | None = None) -> None:
        self._root = _Node()
        self._ids: dict[tuple[str, ...], int] = {}
        self._forms = forms or SHARED
        # word -> the trie nodes it starts (exact, prefix, word forms): most mail words repeat, and
        # resolving prefixes and stems once per distinct word keeps the walk a dict lookup per word.
        self._starts: dict[str, tuple[_Node, ...]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, phrase: str) -> int:
        """Register *phrase* and return its id (the same id for the same words); ValueError if unusable."""
        words = phrase_tokens(phrase)
        if not words:
            raise ValueError(f"keyword {phrase!r} has no words")
        for word in words:
            if word.endswith("*") and len(word) - 1 < MIN_PREFIX:
                raise ValueError(f"keyword {phrase!r}: a prefix before * needs {MIN_PREFIX}+ letters")
        if words in self._ids:
            return self._ids[words]
        self._starts.clear()
        pid = len(self._ids)
        self._ids[words] = pid
        node = self._root
        for word in words:
            if word.endswith("*"):
                stem = word[:-1]
                parent = node
                node = parent.prefix.setdefault(stem, _Node())
                parent.prefix_lens = tuple(sorted({len(k) for k in parent.prefix}))
                parent.branchy = True
            elif word.endswith(FORMS_MARK):
                parent, keys = node, self._forms.keys(word[:-1])
                node = next((parent.forms[k] for k in keys if k in parent.forms), None) or _Node()
                for key in keys:
                    parent.forms.setdefault(key, node)
                parent.branchy = True
            else:
                node = node.exact.setdefault(word, _Node())
        node.terminals = (*node.terminals, pid)
        return pid

    def _children(self, node: _Node, token: str) -> list[_Node]:
        """The nodes *token* leads to from *node*: the word itself, a prefix of it, or one of its forms."""
        found: list[_Node] = []
        child = node.exact.get(token)
        if child is not None:
            found.append(child)
        for length in node.prefix_lens:
            if len(token) >= length:
                child = node.prefix.get(token[:length])
                if child is not None:
                    found.append(child)
        if node.forms:
            for key in self._forms.keys(token):
                child = node.forms.get(key)
                if child is not None and all(child is not f for f in found):
                    found.append(child)
        return found

    def find(self, tokens: list[str], field: str, negation: Negation) -> list[PhraseHit]:
        """Every occurrence of every phrase in *tokens* (overlaps included), negation marked; by phrase."""
        into: dict[int, list[PhraseHit]] = {}
        self.collect(tokens, field, negation, into)
        return [hit for hits in into.values() for hit in hits]

    def collect(self, tokens: list[str], field: str, negation: Negation,
                into: dict[int, list[PhraseHit]]) -> None:
        """``find``, adding each hit to ``into[phrase id]``: the shape the conditions read.

        Why the walk is written out: it runs for every word of every mail.  The words starting no phrase
        are skipped by C-level lookups (``map``, ``compress``); a phrase continues by one dict lookup per
        word unless its node has prefix or word-form children; the negation of a start is decided once.
        """
        n = len(tokens)
        nodes_at = list(map(self._starts.get, tokens))
        if None in nodes_at:  # words not seen before (or since the memo restarted)
            nodes_at = self._learn(tokens, nodes_at)
        for i in compress(range(n), nodes_at):  # only the words that start a phrase (empty tuples are skipped)
            nodes, token = nodes_at[i], tokens[i]
            negated: bool | None = None
            for first in nodes:
                node, end = first, i + 1
                pending: list[tuple[_Node, int]] | None = None  # other branches below a prefix/forms node
                while True:
                    if node.terminals:
                        if negated is None:
                            negated = negation.before(tokens, i)
                        text = token if end == i + 1 else " ".join(tokens[i:end])
                        _add_hits(into, node.terminals, field, i, end, text, negated)
                    nxt = tokens[end] if end < n else ""
                    if nxt:
                        if not node.branchy:
                            child = node.exact.get(nxt)
                            if child is not None:
                                node, end = child, end + 1
                                continue
                        else:
                            if pending is None:
                                pending = []
                            pending.extend((child, end + 1) for child in self._children(node, nxt))
                    if not pending:
                        break
                    node, end = pending.pop()

    def _learn(self, tokens: list[str], nodes_at: list[tuple[_Node, ...] | None]) -> list[tuple[_Node, ...]]:
        """*nodes_at* (the memo's answer per word, None: unknown) completed, the new words remembered.

        The memo maps a word to the children of the root it leads to: words repeat from mail to mail, and
        prefixes and stems are resolved once per word.  Bounded: when the new words would overflow it, it
        restarts.  The answer never depends on the memo still holding a word (another thread may restart it).
        """
        starts, root = self._starts, self._root
        new = {token: tuple(self._children(root, token)) for token in set(tokens).difference(starts)}
        if len(starts) + len(new) > START_CACHE_LIMIT:
            starts.clear()
        if len(new) <= START_CACHE_LIMIT:
            starts.update(new)
        return [nodes if nodes is not None else new[token] if token in new else tuple(self._children(root, token))
                for nodes, token in zip(nodes_at, tokens, strict=True)]


def _add_hits(into: dict[int, list[PhraseHit]], pids: tuple[int, ...], field: str, start: int, end: int,
              text: str, negated: bool) -> None:
    for pid in pids:
        hit = PhraseHit(pid, field, start, end, text, negated)
        same = into.get(pid)
        if same is None:
            into[pid] = [hit]
        else:
            same.append(hit)


class Negation:
    """Decides whether a match is negated: a negator word shortly before it, in the same clause.

    "not urgent", "no longer down", "no data loss", "ist nicht mehr ausgefallen" are
    negated.  Two-word exceptions ("no one") are negators that do not negate; one-word
    exceptions ("able") standing between negator and match mean an ability is negated,
    which is the failure itself: "not able to save", "no longer able to log in".
    """

    def __init__(self, words: tuple[str, ...], exceptions: tuple[str, ...], window: int) -> None:
        self.words = frozenset(w for word in words for w in phrase_tokens(word)[:1])
        pairs, singles = set(), set()
        for exception in exceptions:
            tokens = phrase_tokens(exception)
            if len(tokens) >= 2:
                pairs.add((tokens[0], tokens[1]))
            elif tokens:
                singles.add(tokens[0])
        self.pairs, self.inverters = frozenset(pairs), frozenset(singles)
        self.window = window

    def before(self, tokens: list[str], start: int) -> bool:
        """True when a negator stands within ``window`` words before *start* in the same clause."""
        words = self.words
        stop = start - 1 - self.window
        if stop < -1:
            stop = -1
        if words.isdisjoint(tokens[stop + 1:start]):  # most matches: no negator near, nothing to walk
            return False
        inverted = False
        for j in range(start - 1, stop, -1):
            token = tokens[j]
            if not token:
                return False
            if token in words:
                if j + 1 < len(tokens) and (token, tokens[j + 1]) in self.pairs:
                    continue
                return not inverted
            if token in self.inverters:
                inverted = True
        return False

    def before_text(self, text: str) -> bool:
        """Negation check for a regex match: *text* is what precedes the match."""
        tokens = tokenize(text[-120:])
        return self.before(tokens, len(tokens))
