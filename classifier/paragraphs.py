"""A mail read paragraph by paragraph: what the learned paragraph P1 head scores.

Why paragraphs: a long harmless mail with one serious paragraph (a weekly status mail that says in passing
that the call centre cannot open a case, a "few things from our first week" list) reads, as a whole, like
the harmless part: the bag of words follows the many harmless lines.  People write one matter per
paragraph, so the paragraph is the unit in which the serious part stands alone (classifier/README.md,
"Twelfth round").  The subject is a paragraph of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from classifier.text import tokenize

_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")
MIN_WORDS = 3  # a body's "Hallo Team," or "Viele Grüße" says nothing about severity
MAX_PARAGRAPHS = 200  # a mail of thousands of blank-line-separated lines is scored on its first 200


def paragraphs(fields: Iterable[tuple[str, str, Sequence[str]]]) -> list[Sequence[str]]:
    """The words of each paragraph of the classifier's fields (``Classifier.fields``): the subject as one,
    the body split at blank lines, where paragraphs of fewer than ``MIN_WORDS`` words are left out."""
    found: list[Sequence[str]] = []
    for field, text, tokens in fields:
        if field == "body" and "\n" in text and _BLANK_LINE.search(text):
            parts: Iterable[Sequence[str]] = (tokenize(part) for part in _BLANK_LINE.split(text, MAX_PARAGRAPHS - 1))
            least = MIN_WORDS
        else:  # the subject ("Hotline tot": short by nature), or a body of one paragraph: its words are known
            parts, least = (tokens,), 1
        for words in parts:
            if sum(1 for word in words if word) >= least:
                found.append(words)
    return found[:MAX_PARAGRAPHS]
