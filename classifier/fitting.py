"""Fitting the learned weights (``classifier.learned``) with scikit-learn: the optional extra ``[train]``.

Why apart from ``classifier.learned``: the desk only scores (dict lookups, no scikit-learn); fitting runs in
``hypercare rules train`` (``classifier.training``) and the benchmarks that measure it
(``bench/classifier_cv.py``, ``bench/classifier_learned.py``), and scikit-learn is imported only then.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from classifier.learned import DEFAULT_P1_THRESHOLD, Head, LearnedModel, ParagraphHead, tfidf_vector
from classifier.rules import RuleFileError
from config import ROLES, SEVERITIES

EXPORT_TERMS = 10_000  # the vocabulary: the terms in most training mails (see MAX_SHARE)
DEFAULT_C = 10.0  # inverse regularisation, chosen on author-out CV (README "Fourth round")
# A term in more than this share of the training mails ("the", "und", "merci", any number) says nothing about
# one kind of mail and, in a short mail, weighed as much as its one real word: left out of the vocabulary.
MAX_SHARE = 0.1
MIN_COMMON = 20  # ... and in more than this many mails


class TrainingUnavailable(RuleFileError):
    """scikit-learn is not installed: one line saying how to get it (exit 2)."""


Example = tuple[dict[str, int], str]  # a mail's term counts (``term_counts``) and its label


def train(severity_examples: Sequence[Example], role_examples: Sequence[Example], *, c: float = DEFAULT_C,
          terms: int = EXPORT_TERMS, p1_threshold: float = DEFAULT_P1_THRESHOLD,
          source: str = "trained", max_share: float = MAX_SHARE,
          paragraphs: Sequence[Sequence[Mapping[str, int]]] | None = None) -> LearnedModel:
    """Fit the two heads on (term counts, label) examples, TF-IDF weighted (``classifier.learned``'s docstring).

    The vocabulary is the *terms* terms found in most mails (ties: by name) but in no more than
    *max_share* of them (``MAX_SHARE``); the idf is computed over
    every distinct mail of both heads (a labelled mail gives both heads the same example object), as
    scikit-learn's smoothed idf: ln((1 + n) / (1 + df)) + 1, rounded as it is written.
    """
    documents = list({id(counts): counts for counts, _ in (*severity_examples, *role_examples)}.values())
    frequency: dict[str, int] = {}
    for counts in documents:
        for term in counts:
            frequency[term] = frequency.get(term, 0) + 1
    n = len(documents)
    common = max(max_share * n, MIN_COMMON)  # a tiny site set keeps its words: 7 mails have no "common" term
    kept = sorted((t for t, f in frequency.items() if f <= common), key=lambda t: (-frequency[t], t))[:terms]
    idf = {t: round(math.log((1 + n) / (1 + frequency[t])) + 1, 4) for t in sorted(kept)}
    paragraph = None if paragraphs is None else _fit_paragraphs(severity_examples, paragraphs, c, idf)
    return LearnedModel(_fit(severity_examples, SEVERITIES, c, idf, "severity"),
                        _fit(role_examples, ROLES, c, idf, "role"), p1_threshold, source, idf, paragraph)


PARAGRAPH_ROUNDS = 2  # MIL rounds after the first (whole-mail) fit; chosen on author-out CV (README "Twelfth round")


def _fit_paragraphs(examples: Sequence[Example], paragraphs: Sequence[Sequence[Mapping[str, int]]], c: float,
                    idf: Mapping[str, float]) -> ParagraphHead:
    """The paragraph P1 head, trained as multiple-instance learning: the labels are the mails', not the
    paragraphs'.

    Every paragraph of a mail that is not P1 is a negative example.  Of a P1 mail only one paragraph is
    known to be serious, not which: the first fit reads whole mails (P1 or not), then each round takes
    the paragraph of every P1 mail that the last fit finds most P1-like as the positive example and
    refits.  *paragraphs*: per severity example, its paragraphs' term counts (``term_counts``).
    """
    DictVectorizer, LogisticRegression = _scikit_learn()
    if len(paragraphs) != len(examples):
        raise ValueError("one list of paragraphs per severity example")
    vectorizer = DictVectorizer(sort=True)
    vectorizer.fit([dict(idf)])

    def matrix(counts: Sequence[Mapping[str, int]]) -> Any:
        return vectorizer.transform([tfidf_vector(c, idf) for c in counts])

    positive = [label == "P1" for _, label in examples]
    model = LogisticRegression(C=c, max_iter=5000).fit(matrix([counts for counts, _ in examples]), positive)
    for _ in range(PARAGRAPH_ROUNDS):
        instances: list[Mapping[str, int]] = []
        labels: list[bool] = []
        for parts, is_p1 in zip(paragraphs, positive, strict=True):
            if not parts:
                continue
            if is_p1:
                chances = model.predict_proba(matrix(parts))[:, list(model.classes_).index(True)]
                instances.append(parts[int(chances.argmax())])
                labels.append(True)
            else:
                instances.extend(parts)
                labels.extend([False] * len(parts))
        if len(set(labels)) < 2:
            break
        model = LogisticRegression(C=c, max_iter=5000).fit(matrix(instances), labels)
    sign = 1.0 if model.classes_[1] else -1.0  # the logit of True
    weights = {str(term): round(sign * float(w), 4) for term, w in
               zip(vectorizer.get_feature_names_out(), model.coef_[0], strict=True) if round(float(w), 4)}
    return ParagraphHead(round(sign * float(model.intercept_[0]), 4), weights)


def _scikit_learn() -> tuple[Any, Any]:
    """(DictVectorizer, LogisticRegression), imported only to train; TrainingUnavailable says how to get them."""
    try:
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise TrainingUnavailable("training needs scikit-learn: pip install 'hypercare-desk[train]'") from None
    return DictVectorizer, LogisticRegression


def _fit(examples: Sequence[Example], order: Sequence[str], c: float, idf: Mapping[str, float], what: str) -> Head:
    DictVectorizer, LogisticRegression = _scikit_learn()
    labels = [label for _, label in examples]
    present = [x for x in order if x in labels]
    if len(present) < 2 or (what == "severity" and "P1" not in present):
        need = "P1 and one other severity" if what == "severity" else "two roles"
        raise RuleFileError(f"training: the {what} examples need at least {need}; add labelled mail")
    vectorizer = DictVectorizer(sort=True)
    matrix = vectorizer.fit_transform([tfidf_vector(counts, idf) for counts, _ in examples])
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit(matrix, labels)
    columns = [list(model.classes_).index(x) for x in present]
    coef = model.coef_ if len(model.classes_) > 2 else _binary_as_two(model.coef_)
    intercept = model.intercept_ if len(model.classes_) > 2 else [-model.intercept_[0] / 2, model.intercept_[0] / 2]
    weights = {}
    for j, name in enumerate(vectorizer.get_feature_names_out()):
        row = tuple(round(float(coef[i][j]), 4) for i in columns)
        if any(row):  # a term whose weights all round to 0 says nothing
            weights[str(name)] = row
    return Head(tuple(present), tuple(round(float(intercept[i]), 4) for i in columns), weights)


def _binary_as_two(coef: Any) -> list[list[float]]:
    """scikit-learn keeps one row for two classes (logit of the second); split it symmetrically."""
    return [[-x / 2 for x in coef[0]], [x / 2 for x in coef[0]]]
