"""A small learned opinion next to the rules: linear weights over the classifier's own terms.

Why: keyword rules plateau on mail written by people who never read them (classifier/README.md,
"Fresh tuning batches": 48-60 % severity and 23-31 % P1 recall before tuning on each batch).  A
logistic regression over the same normalised words, stemmed in EN/DE/FR, measured leave-one-batch-out
(``bench/classifier_learned.py``), generalises clearly better.  It stays explainable: the verdict
lists the terms that weighed most ("learned: 'keine rechnung' +1.30"), and the weights are a plain
JSON file a person can read and a site can replace (``[rules] learned``).

How the opinion is folded into the rules' verdict: ``classifier.combination``.

How a mail's terms are weighed: the built-in weights use sublinear TF-IDF, L2-normalised, as text
classification usually does: a term's value is (1 + ln count) x its idf (rare terms weigh more), divided
by the length of the mail's vector, so a long mail does not shout over a short one.  On leave-one-author-out
CV (authors A-J, learned alone) this beat the older presence weighting (a term is there or not, format
``hypercare-learned/1``, still read for site files) by +2.8 points severity and +5.5 points role
(classifier/README.md, "Fourth round").

Runtime needs no scikit-learn: scoring is dict lookups over the terms of the mail.  Fitting the weights
(``classifier.fitting``, ``hypercare rules train``) imports scikit-learn, the optional extra ``[train]``.
"""

from __future__ import annotations

import functools
import json
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from classifier.rules import RuleFileError
from classifier.word_forms import SHARED
from config import ROLES, SEVERITIES

FORMAT = "hypercare-learned/1"  # presence: a term is there or not
TFIDF_FORMAT = "hypercare-learned/2"  # sublinear TF-IDF, L2-normalised: the file carries each term's idf
BUILTIN_WEIGHTS = Path(__file__).with_name("learned_weights.json")
MAX_FILE_BYTES = 4_000_000  # ten thousand terms with two heads and idf are ~1.3 MB; 4 MB is a mistake
MAX_TERMS = 20_000  # per head
MAX_WEIGHT = 100.0  # |weight| (or idf) beyond this is not a trained logistic regression
MAX_TERM_CHARS = 200
DEFAULT_P1_THRESHOLD = 0.5
EVIDENCE_TERMS = 4
LEARNED_RULE = "learned"
_STEMS_LIMIT = 100_000


class LearnedFileError(RuleFileError):
    """The learned weights file cannot be used; one line naming the file and the fix (exit 2)."""


_stems: dict[str, str] = {}


def stem(word: str) -> str:
    """One term per word: the shortest of its EN/DE/FR Snowball stems ("gelöscht", "löschen" -> "losch").

    Numbers are one term ("0"): which number is written says nothing about the kind of mail.
    """
    found = _stems.get(word)
    if found is None:
        if word.isdigit():
            found = "0"
        else:
            found = min((k.split(":", 1)[1] for k in SHARED.keys(word)), key=lambda s: (len(s), s))
        if len(_stems) >= _STEMS_LIMIT:
            _stems.clear()
        _stems[word] = found
    return found


def term_counts(token_lists: Iterable[Sequence[str]]) -> dict[str, int]:
    """Term -> how often the mail has it: stems and in-clause stem pairs (clause breaks are "")."""
    counts: dict[str, int] = {}
    for tokens in token_lists:
        previous = ""
        for token in tokens:
            if not token:
                previous = ""
                continue
            term = stem(token)
            counts[term] = counts.get(term, 0) + 1
            if previous:
                pair = f"{previous} {term}"
                counts[pair] = counts.get(pair, 0) + 1
            previous = term
    return counts


@dataclass(frozen=True)
class Head:
    """One multinomial logistic regression: classes, intercepts, and per term one weight per class."""

    classes: tuple[str, ...]
    intercept: tuple[float, ...]
    weights: dict[str, tuple[float, ...]]

    def predict(self, features: Mapping[str, float]) -> tuple[str, float, list[float]]:
        """(best class, its probability, all probabilities) for term -> value (``LearnedModel.features``).

        The plain reference of what ``LearnedModel.opinion`` computes fast; tests hold the two together.
        """
        logits = list(self.intercept)
        for term, value in features.items():
            row = self.weights.get(term)
            if row is not None:
                logits = [x + value * w for x, w in zip(logits, row, strict=True)]
        probabilities, best = _softmax(logits)
        return self.classes[best], probabilities[best], probabilities

    def to_json(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "intercept": list(self.intercept),
                "weights": {t: list(self.weights[t]) for t in sorted(self.weights)}}


@dataclass(frozen=True)
class ParagraphHead:
    """One logistic regression that tells whether a single paragraph reads as a P1 (``_fit_paragraphs``).

    Scored per paragraph (``classifier.paragraphs``) over the model's vocabulary and idf; the mail's
    paragraph P1 probability is the highest of its paragraphs'.  *weights*: term -> weight; a term of
    the vocabulary without one weighs 0 but still counts in the paragraph's length.
    """

    intercept: float
    weights: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"intercept": self.intercept, "weights": {t: self.weights[t] for t in sorted(self.weights)}}


# A term's scoring row: both heads' weights times its idf, then the paragraph head's weight times its idf
# (0 without a paragraph head), then its idf squared.  An array of doubles: one block of memory per row (a
# tuple holds ten float objects apart), which saves cache misses on every mail.
Row = Sequence[float]
PARAGRAPH_COLUMN = -2
# Per distinct mail word: its term, the term's weights (None: no weight knows it) and the pair terms
# it starts (second term -> weights; None: none).
_Entry = tuple[str, "Row | None", "dict[str, Row] | None"]


# A term the weights know, as scoring keeps it: a stem, or the two stems of an in-clause pair.
TermKey = str | tuple[str, str]


@dataclass(slots=True)  # not frozen: built for every mail, and a frozen init costs a setattr per field
class Opinion:
    """What the weights say about one mail; the evidence is worded only when the opinion is used.

    *found*: every term of the mail the weights know (a stem, or a pair of stems) -> its weights,
    the severity classes then the role classes (*split*: where the role weights start), then the paragraph
    head's (``PARAGRAPH_COLUMN``), multiplied by the term's TF-IDF value before normalisation; *scale* is
    the normalisation (1 / the vector's length; 1 for presence weights), so a term's share of a logit is
    ``row[column] * scale``; *first*: the mail's word (or a pair's two words) each found term came from
    first, to word the evidence.
    """

    severity: str
    severity_p: float
    p1: float
    role: str
    role_p: float
    found: dict[TermKey, Row]
    split: int
    severity_column: int
    role_column: int
    first: dict[TermKey, str | tuple[str, str]] = field(default_factory=dict)
    severity_second: float = 0.0  # the next class's probability: how clearly the weights chose
    role_second: float = 0.0
    scale: float = 1.0
    # The paragraph head (None: the weights have none, or it was not asked): the highest paragraph P1
    # probability, and that paragraph's words (the evidence is worded from them only when it decides).
    paragraph_p1: float | None = None
    paragraph_words: Sequence[str] = ()

    @property
    def terms(self) -> dict[str, str]:
        """The known terms of the mail ("kein rechnung") -> the mail's words they came from first."""
        return {_term_text(key): self._origin(key) for key in self.found}

    def _origin(self, key: TermKey) -> str:
        """The mail's word(s) a term came from first (``first``: a word, or a pair's two words)."""
        words = self.first[key]
        return words if isinstance(words, str) else " ".join(words)

    @property
    def severity_evidence(self) -> tuple[str, ...]:
        return self.evidence(self.severity_column)

    @property
    def role_evidence(self) -> tuple[str, ...]:
        return self.evidence(self.split + self.role_column)

    def evidence(self, *columns: int) -> tuple[str, ...]:
        """Per column (a class), the mail's words whose weights pushed most towards it, strongest first
        (equal weights: in the order the mail has them)."""
        chosen: list[tuple[float, TermKey]] = []
        keys, scale = list(self.found), self.scale
        for column in columns:
            values = list(map(itemgetter(column), self.found.values()))
            # sorted() with a C-level key beats heapq.nlargest's Python loop on a mail's ~50 terms; stable:
            # equal weights stay in mail order.
            top = sorted(range(len(values)), key=values.__getitem__, reverse=True)[:EVIDENCE_TERMS]
            chosen += [(values[i] * scale, keys[i]) for i in top if values[i] > 0]
        return tuple(dict.fromkeys(f"learned: '{self._origin(key)}' {weight:+.2f}" for weight, key in chosen))


def _origins(words: Sequence[str]) -> dict[str, str]:
    """Term -> the words of *words* it came from first (a stem, or an in-clause pair of stems)."""
    origin: dict[str, str] = {}
    previous = previous_word = ""
    for word in words:
        if not word:
            previous = ""
            continue
        term = stem(word)
        origin.setdefault(term, word)
        if previous:
            origin.setdefault(f"{previous} {term}", f"{previous_word} {word}")
        previous, previous_word = term, word
    return origin


def _term_text(key: TermKey) -> str:
    return key if isinstance(key, str) else " ".join(key)


_BOUNDARY: _Entry = ("", None, None)  # a clause break: no weights, starts no pair
_SUBLINEAR = tuple(1 + math.log(1 + extra) for extra in range(64))  # tf of a term seen 1 + extra times


def _sublinear(extra: int) -> float:
    """1 + ln count: the tf of a term seen 1 + *extra* times (a table lookup for the usual counts)."""
    return _SUBLINEAR[extra] if extra < len(_SUBLINEAR) else 1 + math.log(1 + extra)


def _tf_steps(seen: int) -> tuple[float, float]:
    """How much a term's tf and its square grow when it is seen once more after *seen* times (0: from none)."""
    if not seen:
        return 1.0, 1.0  # exactly: a term seen once adds its weight and its idf squared as they are
    before, after = _sublinear(seen - 1), _sublinear(seen)
    return after - before, after * after - before * before


_TF_TABLE = 64
_TF_STEPS = tuple(map(_tf_steps, range(_TF_TABLE)))  # the usual counts, looked up


@dataclass(frozen=True)
class LearnedModel:
    """Two heads over one vocabulary; *idf* (term -> idf) makes the weighting TF-IDF, None presence."""

    severity: Head
    role: Head
    p1_threshold: float
    source: str
    idf: dict[str, float] | None = None
    paragraph: ParagraphHead | None = None
    vocabulary: frozenset[str] = field(init=False, repr=False, compare=False)
    # Scoring tables (built once): all three heads' weights of a term in one row (times its idf), so a mail
    # word costs one dict lookup, and a pair term is found from its first word without building a string.
    _rows: dict[str, Row] = field(init=False, repr=False, compare=False)
    _pairs: dict[str, dict[str, Row]] = field(init=False, repr=False, compare=False)
    _words: dict[str, _Entry] = field(init=False, repr=False, compare=False)
    _intercept: tuple[float, ...] = field(init=False, repr=False, compare=False)
    description: str = field(init=False, repr=False, compare=False)  # of the ``learned`` entry in a verdict

    def __post_init__(self) -> None:
        known = frozenset(self.severity.weights) | frozenset(self.role.weights)
        object.__setattr__(self, "vocabulary", known if self.idf is None else frozenset(self.idf))
        none_s, none_r = (0.0,) * len(self.severity.classes), (0.0,) * len(self.role.classes)
        by_paragraph = self.paragraph.weights if self.paragraph is not None else {}
        rows: dict[str, Row] = {}
        pairs: dict[str, dict[str, Row]] = {}
        for term in sorted(self.vocabulary):
            row = self.severity.weights.get(term, none_s) + self.role.weights.get(term, none_r)
            idf = 1.0 if self.idf is None else self.idf[term]
            # The last column is idf squared: summing the rows' columns also sums the vector's squared length.
            row = array("d", (*(w * idf for w in row), by_paragraph.get(term, 0.0) * idf, idf * idf))
            first, space, second = term.partition(" ")
            if not space:
                rows[term] = row
            elif " " not in second:  # a pair of two stems; anything else no mail can produce
                pairs.setdefault(first, {})[second] = row
        object.__setattr__(self, "_rows", rows)
        object.__setattr__(self, "_pairs", pairs)
        object.__setattr__(self, "_words", {"": _BOUNDARY})
        object.__setattr__(self, "_intercept", (*self.severity.intercept, *self.role.intercept))
        object.__setattr__(self, "description", f"Learned weights ({Path(self.source).name}): terms of labelled "
                           "mail and team corrections")

    def features(self, token_lists: Iterable[Sequence[str]]) -> dict[str, float]:
        """Term -> value as the heads read it: 1 per known term (presence), or sublinear TF-IDF, L2-normalised.

        The plain reference (and what training computes with scikit-learn); ``opinion`` is the fast path.
        """
        counts = term_counts(token_lists)
        if self.idf is None:
            return dict.fromkeys((t for t in counts if t in self.vocabulary), 1.0)
        return tfidf_vector(counts, self.idf)

    def _entry(self, word: str) -> _Entry:
        """The scoring entry of a mail word not seen before; remembered (bounded, like the stems)."""
        words = self._words
        term = stem(word)
        entry = (term, self._rows.get(term), self._pairs.get(term))
        if len(words) >= _STEMS_LIMIT:
            words.clear()
            words[""] = _BOUNDARY
        words[word] = entry
        return entry

    def opinion(self, token_lists: Iterable[Sequence[str]],
                paragraphs: Iterable[Sequence[str]] | None = None) -> Opinion:
        """The mail's known terms (stems and in-clause pairs), weighed as ``features`` says, scored; with
        *paragraphs* (``classifier.paragraphs``) and a paragraph head, also ``paragraph_opinion``.

        The hot path of every classification: one dict lookup per word, a pair looked up only after
        a word that starts one, no string built; a term seen again only counts up.  Rows already carry
        the idf, so a term seen once costs no multiplication.  ``tests/test_classifier_learned.py``
        holds it to ``features`` + ``Head.predict``.
        """
        get, entry_of = self._words.get, self._entry
        found: dict[TermKey, Row] = {}
        first: dict[TermKey, str | tuple[str, str]] = {}
        again: dict[TermKey, int] = {}  # occurrences after the first
        for tokens in token_lists:
            follow: dict[str, Row] | None = None
            previous = previous_word = ""
            for token in tokens:
                term, row, starts = get(token) or entry_of(token)
                if row is not None:
                    if term in found:
                        again[term] = again.get(term, 0) + 1
                    else:
                        found[term] = row
                        first[term] = token
                if follow is not None:
                    pair_row = follow.get(term)
                    if pair_row is not None:
                        pair = (previous, term)
                        if pair in found:
                            again[pair] = again.get(pair, 0) + 1
                        else:
                            found[pair] = pair_row
                            first[pair] = (previous_word, token)
                follow, previous, previous_word = starts, term, token
        if self.idf is not None:  # presence weights count a term once
            for key, extra in again.items():  # sublinear: (1 + ln count) x idf; the row already carries the idf
                tf = _sublinear(extra)
                row = found[key]
                found[key] = (*map(tf.__mul__, row[:-1]), row[-1] * tf * tf)
        severity, role = self.severity, self.role
        intercept = self._intercept
        if found:
            sums = list(map(sum, zip(*found.values(), strict=True)))
            length2 = sums[-1]
        else:
            sums, length2 = [0.0] * len(intercept), 1.0
        scale = 1.0 if self.idf is None else 1 / math.sqrt(length2)
        logits = [b + scale * x for b, x in zip(intercept, sums[:len(intercept)], strict=True)]
        split = len(severity.classes)
        s_logits, r_logits = logits[:split], logits[split:]
        s_top, r_top = max(s_logits), max(r_logits)
        s_exps = [math.exp(x - s_top) for x in s_logits]
        r_exps = [math.exp(x - r_top) for x in r_logits]
        s_total, r_total = sum(s_exps), sum(r_exps)
        s_best, r_best = s_logits.index(s_top), r_logits.index(r_top)
        s_exps[s_best] = r_exps[r_best] = -1.0  # the next class: the largest of the rest
        opinion = Opinion(severity.classes[s_best], 1 / s_total, math.exp(s_logits[self._p1_column] - s_top) / s_total,
                          role.classes[r_best], 1 / r_total, found, split, s_best, r_best, first,
                          max(s_exps) / s_total, max(r_exps) / r_total, scale)
        by_paragraph = None if paragraphs is None else self.paragraph_opinion(paragraphs)
        if by_paragraph is not None:
            opinion.paragraph_p1, opinion.paragraph_words = by_paragraph
        return opinion

    def paragraph_opinion(self, paragraphs: Iterable[Sequence[str]]) -> tuple[float, Sequence[str]] | None:
        """(the highest paragraph P1 probability, that paragraph's words), or None without a paragraph head or
        without a paragraph of known words ("CRM down!" in a vocabulary without "down": nothing to say).

        Each paragraph (``classifier.paragraphs``) is weighed on its own, sublinear TF-IDF over the
        vocabulary, L2-normalised, as in training.  The fast path of ``paragraph_shares``: the word entries
        of ``opinion`` (no stem computed twice, no pair string built), the paragraph weight in each term's row,
        and the dot product and the squared length summed as the words come: a term seen again adds the step
        of its sublinear tf (``_tf_steps``), so no second pass over the terms looks anything up.
        """
        head = self.paragraph
        if head is None:
            return None
        get, entry_of = self._words.get, self._entry
        best, best_words = -1.0, ()
        for words in paragraphs:
            counts: dict[TermKey, int] = {}
            dot = length2 = 0.0
            follow: dict[str, Row] | None = None
            previous = ""
            for token in words:
                term, row, starts = get(token) or entry_of(token)
                if row is not None:
                    n = counts.get(term, 0)
                    counts[term] = n + 1
                    if n:  # seen again (a branch: ~2 us a mail faster than looking up the first step too)
                        step, step2 = _TF_STEPS[n] if n < _TF_TABLE else _tf_steps(n)
                        dot, length2 = dot + step * row[PARAGRAPH_COLUMN], length2 + step2 * row[-1]
                    else:
                        dot, length2 = dot + row[PARAGRAPH_COLUMN], length2 + row[-1]
                pair_row = None if follow is None else follow.get(term)
                if pair_row is not None:
                    pair = (previous, term)
                    n = counts.get(pair, 0)
                    counts[pair] = n + 1
                    if n:
                        step, step2 = _TF_STEPS[n] if n < _TF_TABLE else _tf_steps(n)
                        dot, length2 = dot + step * pair_row[PARAGRAPH_COLUMN], length2 + step2 * pair_row[-1]
                    else:
                        dot, length2 = dot + pair_row[PARAGRAPH_COLUMN], length2 + pair_row[-1]
                follow, previous = starts, term
            if not counts:
                continue
            p1 = _sigmoid(head.intercept + dot / math.sqrt(length2))
            if p1 > best:
                best, best_words = p1, words
        return None if best < 0 else (best, best_words)

    def paragraph_shares(self, words: Sequence[str]) -> dict[str, float]:
        """Term -> its share of one paragraph's P1 logit (without the intercept): the plain reference of
        ``paragraph_opinion``, and what the evidence is worded from."""
        if self.paragraph is None or self.idf is None:
            return {}
        weights = self.paragraph.weights
        return {t: v * weights.get(t, 0.0) for t, v in tfidf_vector(term_counts((words,)), self.idf).items()}

    def paragraph_evidence(self, words: Sequence[str]) -> tuple[str, ...]:
        """The paragraph's words that weighed most towards P1, strongest first ("learned paragraph: 'call' +0.66")."""
        shares = self.paragraph_shares(words)
        top = sorted((x for x in shares.items() if x[1] > 0), key=itemgetter(1), reverse=True)[:EVIDENCE_TERMS]
        origin = _origins(words)
        return tuple(f"learned paragraph: '{origin.get(term, term)}' {weight:+.2f}" for term, weight in top)

    @property
    def _p1_column(self) -> int:
        return self.severity.classes.index("P1")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT if self.idf is None else TFIDF_FORMAT,
                                "p1_threshold": self.p1_threshold}
        if self.idf is not None:
            data["idf"] = {t: self.idf[t] for t in sorted(self.idf)}
        data = {**data, "severity": self.severity.to_json(), "role": self.role.to_json()}
        if self.paragraph is not None:
            data["p1_paragraph"] = self.paragraph.to_json()
        return data

    @classmethod
    def load(cls, path: Path) -> LearnedModel:
        """Read and validate a weights file; LearnedFileError names what is wrong."""
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise LearnedFileError(f"{path}: {size} bytes; a learned weights file is at most {MAX_FILE_BYTES} "
                                       "(export fewer terms with 'hypercare rules train')")
            raw = path.read_bytes()
        except FileNotFoundError:
            raise LearnedFileError(f"{path}: learned weights file not found; fix [rules] learned "
                                   "or write it with 'hypercare rules train'") from None
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the configured path
            reason = getattr(exc, "strerror", None) or str(exc)
            raise LearnedFileError(f"{path!s:.200}: cannot read learned weights ({reason}); "
                                   "fix [rules] learned") from None
        return _model_of(raw, str(path))

    @classmethod
    def from_json(cls, data: Any, source: str) -> LearnedModel:
        if not isinstance(data, dict) or data.get("format") not in (FORMAT, TFIDF_FORMAT):
            raise LearnedFileError(f"{source}: not a learned weights file (\"format\" must be {TFIDF_FORMAT!r} "
                                   f"or {FORMAT!r})")
        threshold = data.get("p1_threshold", DEFAULT_P1_THRESHOLD)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
            raise LearnedFileError(f"{source}: p1_threshold must be a number in (0, 1], got {threshold!r}")
        severity = _head(data.get("severity"), SEVERITIES, "severity", source)
        role = _head(data.get("role"), ROLES, "role", source)
        idf = _idf(data.get("idf"), source) if data["format"] == TFIDF_FORMAT else None
        if idf is not None:
            for head in (severity, role):
                missing = next((t for t in head.weights if t not in idf), None)
                if missing is not None:
                    raise LearnedFileError(f"{source}: term {missing[:40]!r} has weights but no idf; "
                                           "write the file with 'hypercare rules train'")
        paragraph = None
        if data.get("p1_paragraph") is not None:
            if idf is None:
                raise LearnedFileError(f"{source}: p1_paragraph needs the TF-IDF format {TFIDF_FORMAT!r}")
            paragraph = _paragraph_head(data["p1_paragraph"], idf, source)
        return cls(severity, role, float(threshold), source, idf, paragraph)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a weight")


def _head(data: Any, allowed: Sequence[str], what: str, source: str) -> Head:
    def fail(message: str) -> LearnedFileError:
        return LearnedFileError(f"{source}: {what}: {message}")

    if not isinstance(data, dict):
        raise fail("missing; expected {\"classes\": [...], \"intercept\": [...], \"weights\": {...}}")
    classes = data.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes) \
            or any(c not in allowed for c in classes):
        raise fail(f"classes must be two or more of {', '.join(allowed)}")
    if what == "severity" and "P1" not in classes:
        raise fail("classes must include P1")
    width = len(classes)
    intercept = _numbers(data.get("intercept"), width, fail, "intercept")
    weights = data.get("weights")
    if not isinstance(weights, dict):
        raise fail("weights must be an object of term -> list of numbers")
    if len(weights) > MAX_TERMS:
        raise fail(f"{len(weights)} terms; at most {MAX_TERMS}")
    if _plain_terms(weights) and _plain_rows(weights.values(), width):
        return Head(tuple(classes), intercept, dict(zip(weights, map(tuple, weights.values()), strict=True)))
    checked: dict[str, tuple[float, ...]] = {}
    for term, row in weights.items():
        if not term or len(term) > MAX_TERM_CHARS or not term.isprintable():
            raise fail(f"term {term[:40]!r} is not a term (empty, control characters or over {MAX_TERM_CHARS} chars)")
        checked[term] = _numbers(row, width, fail, f"term {term!r}")
    return Head(tuple(classes), intercept, checked)


def _paragraph_head(data: Any, idf: Mapping[str, float], source: str) -> ParagraphHead:
    def fail(message: str) -> LearnedFileError:
        return LearnedFileError(f"{source}: p1_paragraph: {message}")

    if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
        raise fail("expected {\"intercept\": number, \"weights\": {term: number}}")
    (intercept,) = _numbers([data.get("intercept")], 1, fail, "intercept")
    weights = data["weights"]
    if len(weights) > MAX_TERMS:
        raise fail(f"{len(weights)} terms; at most {MAX_TERMS}")
    if weights.keys() <= idf.keys() and _plain_rows([list(weights.values())], len(weights)):
        return ParagraphHead(intercept, dict(weights))
    checked: dict[str, float] = {}
    for term, weight in weights.items():
        if term not in idf:
            raise fail(f"term {term[:40]!r} is not in the vocabulary (idf); write the file with "
                       "'hypercare rules train'")
        (checked[term],) = _numbers([weight], 1, fail, f"term {term[:40]!r}")
    return ParagraphHead(intercept, checked)


def _idf(data: Any, source: str) -> dict[str, float]:
    if not isinstance(data, dict) or not data:
        raise LearnedFileError(f"{source}: idf: missing; {TFIDF_FORMAT} needs \"idf\": {{term: number}}")
    if len(data) > MAX_TERMS:
        raise LearnedFileError(f"{source}: idf: {len(data)} terms; at most {MAX_TERMS}")
    checked: dict[str, float] = {}
    for term, value in data.items():
        if not term or len(term) > MAX_TERM_CHARS or not term.isprintable():
            raise LearnedFileError(f"{source}: idf: term {term[:40]!r} is not a term (empty, control characters "
                                   f"or over {MAX_TERM_CHARS} chars)")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_WEIGHT:
            raise LearnedFileError(f"{source}: idf: term {term!r}: {value!r} is not an idf (a number in "
                                   f"(0, {MAX_WEIGHT:g}])")
        checked[term] = float(value)
    return checked


_PLAIN_NUMBERS = frozenset({float, int})


def _plain_terms(terms: Iterable[str]) -> bool:
    """Whether every term is printable, not empty and short enough: the common case, checked in C (the
    built-in file's 10,000 terms are read at every start of the desk); else each is looked at, to name it."""
    terms = list(terms)  # the keys of a JSON object: always strings
    return "" not in terms and max(map(len, terms), default=0) <= MAX_TERM_CHARS and all(map(str.isprintable, terms))


def _plain_rows(rows: Iterable[Any], width: int) -> bool:
    """Whether *rows* are lists of *width* floats (no int, no bool) of at most ``MAX_WEIGHT``: the common
    case, checked in C; the rows can then be kept as they are.  Else ``_numbers`` looks at each (and names
    what is wrong)."""
    rows = list(rows)
    if {*map(type, rows)} != {list} or {*map(len, rows)} != {width}:
        return False
    values = list(chain.from_iterable(rows))
    return {*map(type, values)} == {float} and _bounded(values)


def _bounded(values: list[float]) -> bool:
    """Whether no value is beyond ``MAX_WEIGHT`` (which also rules out infinity) nor NaN, in C; not empty.

    NaN is asked apart because ``max()`` passes over one that is not first.  A JSON file cannot hold one
    (``_no_constant`` refuses it), Python values handed to ``LearnedModel.from_json`` can."""
    return max(map(abs, values)) <= MAX_WEIGHT and not any(map(math.isnan, values))


def _numbers(value: Any, width: int, fail: Any, what: str) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != width:
        raise fail(f"{what}: expected a list of {width} numbers")
    # The common case in C: only ints and floats (not bools) within bounds (width >= 1: never empty).
    # Anything else is looked at number by number below.
    if {*map(type, value)} <= _PLAIN_NUMBERS and _bounded(value):
        return tuple(map(float, value))
    for x in value:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or abs(x) > MAX_WEIGHT:
            raise fail(f"{what}: {x!r} is not a finite weight of at most {MAX_WEIGHT:g}")
    return tuple(float(x) for x in value)


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _softmax(logits: list[float]) -> tuple[list[float], int]:
    """Probabilities and the best column (ties: the first)."""
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = sum(exps)
    return [x / total for x in exps], logits.index(top)


def load_configured(setting: str, resolve: Any) -> LearnedModel | None:
    """``[rules] learned``: "" = the built-in weights, "off" = none, else a path (*resolve* makes it absolute)."""
    if setting == "off":
        return None
    return LearnedModel.load(BUILTIN_WEIGHTS if not setting else Path(resolve(setting)))


@functools.lru_cache(maxsize=2)
def _model_of(raw: bytes, source: str) -> LearnedModel:
    """The model in the bytes of a weights file, built once per distinct file.

    Why cached: parsing and tabling the ~1 MB built-in file costs ~60 ms, paid by every ``App`` (each
    command, each test's desk); the model is frozen (its word memo is only a cache), so equal bytes share it.
    """
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise LearnedFileError(f"{source}: not valid JSON ({reason}); "
                               "write it with 'hypercare rules train'") from None
    return LearnedModel.from_json(data, source)


def tfidf_vector(counts: Mapping[str, int], idf: Mapping[str, float]) -> dict[str, float]:
    """Sublinear TF-IDF, L2-normalised, over the terms *idf* knows: (1 + ln count) x idf / the length."""
    raw = {t: (1 + math.log(n)) * idf[t] for t, n in counts.items() if t in idf}
    norm = math.sqrt(sum(v * v for v in raw.values()))
    return {t: v / norm for t, v in raw.items()} if norm else {}


def write(model: LearnedModel, path: Path) -> None:
    """Deterministic JSON, one term per line (readable, diffable): the same data give the same bytes."""
    data = model.to_json()
    lines = ["{", f'"format": {json.dumps(data["format"])},', f'"p1_threshold": {json.dumps(model.p1_threshold)},']
    if "idf" in data:
        lines.append('"idf": {')
        lines.append(",\n".join(f"{json.dumps(t, ensure_ascii=False)}: {json.dumps(v)}"
                                for t, v in data["idf"].items()))
        lines.append("},")
    for name in ("severity", "role"):
        head = data[name]
        lines.append(f'"{name}": {{"classes": {json.dumps(head["classes"])}, '
                     f'"intercept": {json.dumps(head["intercept"])}, "weights": {{')
        rows = [f"{json.dumps(term, ensure_ascii=False)}: {json.dumps(w)}" for term, w in head["weights"].items()]
        lines.append(",\n".join(rows))
        lines.append("}}" + ("," if name == "severity" or "p1_paragraph" in data else ""))
    if "p1_paragraph" in data:
        head = data["p1_paragraph"]
        lines.append(f'"p1_paragraph": {{"intercept": {json.dumps(head["intercept"])}, "weights": {{')
        lines.append(",\n".join(f"{json.dumps(term, ensure_ascii=False)}: {json.dumps(w)}"
                                for term, w in head["weights"].items()))
        lines.append("}}")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
