"""The Snowball stemmers the classifier uses: PyStemmer's C build, with the stems of the pure-Python one."""

from __future__ import annotations

from pathlib import Path

import pytest
import Stemmer
from snowballstemmer.english_stemmer import EnglishStemmer
from snowballstemmer.french_stemmer import FrenchStemmer
from snowballstemmer.german_stemmer import GermanStemmer

from classifier.text import tokenize
from classifier.word_forms import LANGUAGES, WordForms, _accented

LABELLED = Path(__file__).parent / "data" / "labelled"
PURE_PYTHON = {"english": EnglishStemmer, "german": GermanStemmer, "french": FrenchStemmer}


def test_the_stemmers_in_use_are_the_c_build() -> None:
    """Without PyStemmer every new word of a mail costs ~135 µs instead of ~6 (classifier.word_forms): a
    broken install would only be slower, so it is checked here."""
    assert all(isinstance(stemmer, Stemmer.Stemmer) for _code, stemmer in WordForms()._stemmers)


def test_the_c_build_gives_the_stems_of_the_pure_python_stemmers() -> None:
    """The rules' word forms and the learned weights' terms were made with the pure-Python stemmers: a pin
    moved on one side only must not change a stem (203,492 words agreed when PyStemmer came in)."""
    words: set[str] = set()
    for path in sorted(LABELLED.glob("*.eml"))[::10]:
        words.update(tokenize(path.read_bytes().decode("utf-8", "replace")))
    words.discard("")
    words.update([_accented(w) for w in words] + [w[2:-1] + "en" for w in words if w.startswith("ge")])
    ordered = sorted(words)
    assert len(ordered) > 5_000
    for _code, name in LANGUAGES:
        assert Stemmer.Stemmer(name).stemWords(ordered) == [PURE_PYTHON[name]().stemWord(w) for w in ordered], name


@pytest.mark.parametrize("word", [
    "\x00", "a\x00b", "a\udcffb", "\ud800", "é" * 64, "ß" * 64, "x" * 1_000_000, "ﬁle", "ǅemal", "i̇stanbul",
    "\u0660\u0661\u0662", "ΩΩΩ", "日本語の単語", "\u200bzero", "a" * 65,
])
def test_hostile_words_get_keys_and_never_raise(word: str) -> None:
    """NUL, surrogates and combining marks are kept from the stemmers by the letters-only check (PyStemmer
    raises on a lone surrogate, the pure-Python stemmers did not); Greek, CJK, ligatures, the longest word
    stemmed and a megabyte one go through or past them without an error."""
    keys = WordForms().keys(word)
    assert keys and all(isinstance(k, str) and ":" in k for k in keys)
