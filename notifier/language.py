"""Which language a reporter wrote in, so the acknowledgement answers in it (issue 14).

Why lingua-language-detector with only English, German and French loaded: those are the
languages the desk has templates for, and a detector that may only choose among them is
both faster and more accurate on a two-line mail than one that considers 75 languages.
Its models ship inside the wheel, so nothing is downloaded at run time.  Low-accuracy mode
(trigram models only): 0.08 s to load on the first detection instead of 2 s (the first
acknowledgement after a start must not wait), about 30 µs per mail, and a mail's subject
plus body is long enough for it.  Short or unclear text (a "ok",
a mail of numbers) falls back to English, as does anything the detector is not sure of.
"""

from __future__ import annotations

import threading
from typing import Any

LANGUAGES = ("en", "de", "fr")
FALLBACK = "en"
MIN_LETTERS = 12  # fewer letters than this are not enough to tell a language
MIN_CONFIDENCE = 0.6
MAX_CHARS = 2000  # the opening of a mail says its language; a megabyte body must not cost seconds

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


def detect_language(*texts: str) -> str:
    """``"en"``, ``"de"`` or ``"fr"`` for the text of a mail (subject, body); English when unsure."""
    text = " ".join(t for t in texts if t)[:MAX_CHARS]
    text = text.replace("\x00", " ")
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        return FALLBACK
    values = _build().compute_language_confidence_values(text)
    if not values:
        return FALLBACK
    best = values[0]
    if best.value < MIN_CONFIDENCE:
        return FALLBACK
    return _CODES.get(best.language.name, FALLBACK)
