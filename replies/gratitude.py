"""A reply that only says thank you: recorded as positive feedback, never a reopening (issue 14).

Why a rule of its own, before "closed ticket": "Thanks, works again!" reopened a resolved P1,
paged the team again and restarted its ladder.  A reply to a resolved (or closed) ticket
from someone taking part in it is a thank-you when it is short, contains a word of thanks
or of success in English, German or French, and has no question and no word of a problem
("still", "error", "nicht", "toujours", ...).  Anything else keeps the old meaning: the
reporter reopens within ``reopen_days``.  Word lists rather than a model: each word is a
reason a person can read, and a wrong "thanks" costs only a missed reopening the reporter
can still make by writing what is wrong.
"""

from __future__ import annotations

import re

MAX_WORDS = 40
THANKS = frozenset("""
thanks thank thx cheers great perfect works working solved fixed awesome excellent
danke dankeschön vielen herzlichen super prima perfekt klappt funktioniert geht gelöst bestens toll
merci parfait super génial fonctionne marche résolu top impeccable
""".split())
PROBLEM = frozenset("""
still not no isn't doesn't don't can't cannot won't error errors fail fails failed failing broken problem
problems issue issues wrong bug crash down slow missing
nicht kein keine keinen fehler fehlermeldung problem probleme immer noch kaputt falsch langsam fehlt
pas plus toujours encore erreur erreurs problème problèmes bug panne lent manque impossible
""".split())
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def is_thank_you(text: str) -> bool:
    """True for a short thank-you or "works again" without a question or a problem word."""
    text = (text or "")[:2000]
    if "?" in text:
        return False
    words = [w.lower() for w in _WORD.findall(text)]
    if not words or len(words) > MAX_WORDS:
        return False
    if any(w in PROBLEM or w.endswith("n't") for w in words):
        return False
    return any(w in THANKS for w in words)
