"""Topics as human words: the most frequent meaningful terms of ticket subjects.

Why words and not classifier rule names: a stakeholder reads "invoice (12), login (9)", not
``fallback-severity`` or ``topic-admin`` (rules say how a ticket was judged, not what it is
about).  A term counts once per ticket; stop words of the desk's languages (the stopwords-iso
lists, shipped with the package: nothing is downloaded) and the words every support mail
shares ("issue", "urgent", "Re:") are not topics.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import cache

import stopwordsiso

LANGUAGES = ("en", "de", "fr", "es", "it", "nl")
MIN_LENGTH = 3
# Words of every support mail: they say nothing about what a ticket is about.
DESK_WORDS = frozenset("""
re aw fw fwd wg tr sv antw rv ref hypercare crm support ticket tickets hc help hilfe please bitte urgent dringend
asap issue issues problem problems problème question questions frage fragen request anfrage demande
error fehler erreur cannot can't can’t doesn't don't not working work works broken hello hallo hi bonjour thanks
danke merci query need needed still again new neue neuer neues system today heute morning afternoon
""".split())
# Words the generic lists call stop words but that name a support problem ("CRM is down").
KEEP = frozenset("down up empty page offline online".split())
_WORD = re.compile(r"[^\W\d_](?:[\w'’-]*[^\W_])?")
_KEY = re.compile(r"^[a-z]{1,10}-\d+$")


@cache
def _stop_words() -> frozenset[str]:
    return (frozenset(stopwordsiso.stopwords(list(LANGUAGES))) - KEEP) | DESK_WORDS


def terms(text: str) -> list[str]:
    """The meaningful words of *text*, lower-case, each once, in order of appearance."""
    stop = _stop_words()
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text.lower()):
        word = match.group(0).strip("'’-")
        if len(word) < MIN_LENGTH or word in stop or _KEY.match(word) or word in seen:
            continue
        seen[word] = None
    return list(seen)


def top_terms(texts: Iterable[str], limit: int = 5) -> list[tuple[str, int]]:
    """The *limit* terms found in most texts (ties alphabetical); a term of one text only is no topic."""
    ranked = sorted(((word, n) for word, n in term_counts(texts).items() if n >= 2),
                    key=lambda item: (-item[1], item[0]))
    return ranked[:limit]


def topic_of(text: str, ranking: dict[str, int]) -> str | None:
    """The best-ranked recurring term of *text* (its topic), or None when it shares none with others."""
    candidates = [word for word in terms(text) if ranking.get(word, 0) >= 2]
    return min(candidates, key=lambda word: (-ranking[word], word)) if candidates else None


def term_counts(texts: Iterable[str]) -> dict[str, int]:
    """How many texts mention each term (the ranking ``topic_of`` picks from)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(terms(text or ""))
    return dict(counts)
