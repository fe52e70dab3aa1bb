"""Word forms: "deleted", "deletes", "deleting" and "delete" are one word to a rule.

Why Snowball stemmers and not lists of forms: a rule author writes ``delete~`` (or
``forms = true`` for a whole keyword list) once, and every inflection in English, German
and French matches, including forms nobody thought to list ("supprimées", "löschen").
The mail's language is not detected (that would cost more than the whole classification):
each word is stemmed by all three stemmers and matches a keyword when the stems agree in
one language, so "supprimées" meets "supprimer" through the French stemmer and "deleting"
meets "delete" through the English one.

German participles carry a "ge-" prefix the Snowball German stemmer keeps ("gelöscht" vs
"löschen"); the one addition here is a second German key for ``ge...t`` words without the
prefix and the ending, so "gelöscht" meets "löschen" and "geändert" meets "ändern".  The
French stemmer needs the accent of a feminine participle ("supprimées"), which normalising
removed ("supprimees"); it is put back before stemming.

Words arrive normalised (lower case, accents folded: ``classifier.text.normalize``), so
"gelöscht" and "geloscht" give the same keys.  The keys of each distinct word are cached; the
cache is bounded (a mail of random words must not grow memory without limit) and simply starts
afresh when full.

Why PyStemmer beside snowballstemmer: ``snowballstemmer.stemmer`` hands out PyStemmer's stemmers, the
same Snowball algorithms compiled to C, when it is installed (a dependency).  Stemming a new word in
three languages cost ~135 µs in pure Python and ~6 µs in C; a process starts with an empty cache, so
a ``poll --once`` or ``ingest`` classified real mail at 1.0-1.4 ms a mail instead of ~0.35 until it
had seen most words (0.44-0.5 with the C build).  Both give the same stems: 203,492 words of the
corpus, the tuning mail and their variants agreed (tests/test_classifier_word_forms.py checks the
words of every tenth tuning mail).
"""

from __future__ import annotations

import snowballstemmer

FORMS_MARK = "~"
LANGUAGES = (("en", "english"), ("de", "german"), ("fr", "french"))
CACHE_LIMIT = 100_000
_MIN_LENGTH = 3  # shorter words ("is", "an", "la") are matched as they are
# Longer "words" too: no inflected word is that long, and stemming costs time linear in the length in pure
# Python (one 100 KB token of an 850 KB body took 2.4 s in three stemmers: bench/hostile.py, punycode-body).
_MAX_LENGTH = 64


class WordForms:
    """Stem keys of a word: one per language whose stemmer is consulted (``"en:delet"``)."""

    def __init__(self) -> None:
        self._stemmers = tuple((code, snowballstemmer.stemmer(name)) for code, name in LANGUAGES)
        self._cache: dict[str, tuple[str, ...]] = {}

    def keys(self, word: str) -> tuple[str, ...]:
        """The keys two forms of one word share; cached per distinct word."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        # Letters only: also what keeps a lone surrogate (UnicodeEncodeError in PyStemmer) from the stemmers.
        if not _MIN_LENGTH <= len(word) <= _MAX_LENGTH or not word.isalpha():
            found: tuple[str, ...] = (f"=:{word}",)
        else:
            keys = {f"{code}:{stemmer.stemWord(_accented(word) if code == 'fr' else word)}"
                    for code, stemmer in self._stemmers}
            if word.startswith("ge") and word.endswith("t") and len(word) > 6:
                keys.add(f"de:{self._stemmers[1][1].stemWord(word[2:-1] + 'en')}")
            found = tuple(sorted(keys))
        if len(self._cache) >= _limit():
            self._cache.clear()
        self._cache[word] = found
        return found


def _limit() -> int:
    """Read at each insert, so a test can lower it without building a hundred thousand stems."""
    return CACHE_LIMIT


def _accented(word: str) -> str:
    """French feminine participles with their accent back: "supprimees" -> "supprimées"."""
    if word.endswith("ees"):
        return word[:-3] + "\u00e9es"
    if word.endswith("ee"):
        return word[:-2] + "\u00e9e"
    return word


SHARED = WordForms()
