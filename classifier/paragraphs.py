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


def paragraph_words(text: str) -> list[list[str]]:
    """The words of each paragraph of *text* (split at blank lines; the last holds the rest after
    ``MAX_PARAGRAPHS``), all of them, short ones included."""
    if _has_blank_line(text):
        return [tokenize(part) for part in _BLANK_LINE.split(text, MAX_PARAGRAPHS - 1)]
    return [tokenize(text)]


def _has_blank_line(text: str) -> bool:
    return "\n" in text and _BLANK_LINE.search(text) is not None


def body_words(text: str) -> tuple[list[str], list[list[str]]]:
    """(the body's words, its paragraphs' words): the body tokenised once, paragraph by paragraph.

    Why: the rules and the whole-mail weights read the body's words, the paragraph head its paragraphs';
    tokenising the paragraphs and joining them with a clause break ("") gives both for the price of one.
    ``tokenize`` ends a clause at a blank line too (also one holding a carriage return), so the joined
    words are ``tokenize(text)``'s, give or take a repeated clause break, whichever way a mail is read.
    """
    parts = paragraph_words(text)
    if len(parts) == 1:
        return parts[0], parts
    joined: list[str] = []
    for part in parts:
        if joined:
            joined.append("")
        joined += part
    return joined, parts


def paragraphs(fields: Iterable[tuple[str, str, Sequence[str]]],
               body_parts: Sequence[Sequence[str]] | None = None) -> list[Sequence[str]]:
    """The words of each paragraph of the classifier's fields (``Classifier.fields``): the subject as one,
    the body split at blank lines, where paragraphs of fewer than ``MIN_WORDS`` words are left out.

    *body_parts*: the body's paragraphs as ``body_words`` gave them (else the body's text is split again).
    """
    found: list[Sequence[str]] = []
    for field, text, tokens in fields:
        split: Sequence[Sequence[str]] = ()
        if field == "body":
            split = body_parts if body_parts is not None else paragraph_words(text) if _has_blank_line(text) else ()
        if len(split) > 1:
            parts: Iterable[Sequence[str]] = split
            least = MIN_WORDS
        else:  # the subject ("Hotline tot": short by nature), or a body of one paragraph: its words are known
            parts, least = (tokens,), 1
        for words in parts:
            if len(words) - words.count("") >= least:  # its words, not its clause breaks
                found.append(words)
    return found[:MAX_PARAGRAPHS]
