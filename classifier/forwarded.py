"""A forwarded report is read whole: its forwarded part is what happened.

Why: a reply's quoted history is our own acknowledgement or an earlier mail of the same thread, so the
classifier reads only the new text (``engine.unquoted``).  A forward is the opposite: "see below, any
news?" above a customer's complaint, a colleague's report passed on to the desk.  The new text says
nothing; the forwarded mail says what is hit and who is affected.  In the labelled sets 35 of the 61
mails with a forwarded subject are P1 (quotes sent to the wrong client, a mass mail to the wrong
customers), which the classifier saw only as "any news?".
"""

from __future__ import annotations

import re

# The subject prefixes, written once: a reply's ("Re:", "AW:", "SV:", also "Re[2]:", "AW(3):") and a
# forward's ("Fw:", "Fwd:", "WG:" weitergeleitet, "TR:" transféré).
_REPLY = r"(?:re|aw|antw|sv|vs|ref|r\u00e9f)"
_FORWARD = r"(?:fwd?|wg|tr|weitergeleitet)"
_COLON = r"\s*(?:\[\d+\]|\(\d+\))?\s*:"
# A reply's subject repeats an earlier mail's subject: quoted history, not this mail's words (engine.fields).
REPLY_SUBJECT = re.compile(rf"^\s*{_REPLY}{_COLON}", re.IGNORECASE)
# A forward, also after "Re:"/"AW:": "Re: Fw: quotes ...".
_FORWARD_SUBJECT = re.compile(rf"^\s*(?:{_REPLY}{_COLON}\s*)*{_FORWARD}\s*:", re.IGNORECASE)
# Any chain of reply and forward prefixes, taken off to read the subject itself.
_PREFIXES = re.compile(rf"^\s*(?:(?:{_REPLY}|{_FORWARD}){_COLON}\s*)+", re.IGNORECASE)
# The mail programs' own words above a forwarded mail (not "Original Message": Outlook's reply says it too).
# The leading run is one class without a newline: a line of 100,000 dashes (or 50,000 short lines) costs a
# scan of that line, not a backtrack over the rest of the body.
_FORWARD_MARKER = re.compile(
    r"^[ \t>*_-]*(?:forwarded message|weitergeleitete nachricht|message transf\u00e9r\u00e9|"
    r"begin forwarded message|anfang der weitergeleiteten nachricht|d\u00e9but du message r\u00e9exp\u00e9di\u00e9)",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTE_MARKS = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.MULTILINE)


def is_forwarded(subject: str, full_body: str) -> bool:
    """A forward by its subject ("Fw:", also under "Re:") or by the mail program's forward marker."""
    return bool(_FORWARD_SUBJECT.match(subject)) or _FORWARD_MARKER.search(full_body) is not None


def bare_subject(subject: str) -> str:
    """The subject without its "Re: Fw: AW:" chain."""
    return _PREFIXES.sub("", subject, count=1)


def dequoted(body: str) -> str:
    """The whole body with the quote marks ("> ") taken off each line, so the forwarded words read as text."""
    return _QUOTE_MARKS.sub("", body) if ">" in body else body
