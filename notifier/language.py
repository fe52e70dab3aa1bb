"""Which language a reporter wrote in, so the acknowledgement answers in it (issue 14).

Why lingua-language-detector with only English, German and French loaded: those are the
languages the desk has templates for, and a detector that may only choose among them is
both faster and more accurate on a two-line mail than one that considers 75 languages.
Its models ship inside the wheel, so nothing is downloaded at run time.  Low-accuracy mode
(trigram models only): 0.08 s to load on the first detection instead of 2 s (the first
acknowledgement after a start must not wait), and a mail's subject plus body is long enough
for it.  A mail that is plainly English (function words, none German or French) is answered
without the detector.  Short or unclear text (a "ok",
a mail of numbers) falls back to English, as does anything the detector is not sure of.
"""

from __future__ import annotations

import re
import threading
from typing import Any

LANGUAGES = ("en", "de", "fr")
FALLBACK = "en"
MIN_LETTERS = 12  # fewer letters than this are not enough to tell a language
MIN_CONFIDENCE = 0.6
MAX_CHARS = 2000  # the opening of a mail says its language; a megabyte body must not cost seconds

# The plainly English mail, the common case, without the detector (it cost ~0.2 ms of a ticket's ~1.3 ms):
# enough English function words and not one German or French one.  The words are chosen so that none of
# them is also a word of the other two languages; anything else (fewer words, one foreign word) goes to
# the detector.  ``tests/test_language.py`` checks that the shortcut never disagrees with the detector.
_ENGLISH = frozenset("""
the and is are was were to of for with this that have has you your since could would should can't
cannot does doesn't don't didn't from when what which there their they them we our my it's i'm
after before again because been being but into just only other some than then these those
""".split())
_GERMAN_OR_FRENCH = frozenset("""
der die das und ist nicht ich sie wir mit von auf für ein eine einer bitte seit kann können haben
wird werden nach auch noch schon oder aber wenn dem den des zu im hallo danke gruß grüße freundlichen
le la les des une est et pour pas que qui dans avec sur nous vous je ne ce cette mais au aux du
depuis bonjour merci cordialement très été sont
""".split())
_WORDS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
MIN_ENGLISH_WORDS = 4


def _plainly_english(text: str) -> bool:
    english = 0
    for match in _WORDS.finditer(text.lower()):
        word = match.group()
        if word in _GERMAN_OR_FRENCH:
            return False
        english += word in _ENGLISH
    return english >= MIN_ENGLISH_WORDS


_lock = threading.Lock()
_detector: Any = None


def _build() -> Any:
    global _detector
    with _lock:
        if _detector is None:
            from lingua import Language, LanguageDetectorBuilder

            _detector = LanguageDetectorBuilder.from_languages(
                Language.ENGLISH, Language.GERMAN, Language.FRENCH).with_low_accuracy_mode().build()
    return _detector


_CODES = {"ENGLISH": "en", "GERMAN": "de", "FRENCH": "fr"}


def _enough_letters(text: str) -> bool:
    """At least ``MIN_LETTERS`` letters (``str.isalpha``); stops counting there (a mail has them in its first
    line: counting every character of 2,000 was a tenth of the parse worker's time per mail)."""
    letters = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            if letters >= MIN_LETTERS:
                return True
    return False


def detect_language(*texts: str) -> str:
    """``"en"``, ``"de"`` or ``"fr"`` for the text of a mail (subject, body); English when unsure."""
    text = " ".join(t for t in texts if t)[:MAX_CHARS]
    text = text.replace("\x00", " ")
    if not _enough_letters(text):
        return FALLBACK
    if _plainly_english(text):
        return "en"
    values = _build().compute_language_confidence_values(text)
    if not values:
        return FALLBACK
    best = values[0]
    if best.value < MIN_CONFIDENCE:
        return FALLBACK
    return _CODES.get(best.language.name, FALLBACK)
