"""Team corrections of a verdict (#severity, #assign), kept with the evidence the classifier had.

Why here, in the domain: the replies room records a correction when a team member changes the
severity or the owner role, and the classifier's tools (``rules eval --overrides``,
``rules suggest``) learn from them; both rooms may import ``tickets``, neither the other.
The evidence is copied, not referenced: the rules that fired, the two axes, the subject and the
text the classifier read, so a correction still teaches the same thing after the rule file or
the thread changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tickets.lifecycle import first_inbound
from tickets.models import Correction, Ticket

KINDS = ("severity", "role")
MAX_TEXT = 4000  # characters of the mail kept: enough for the words a rule would need


def evidence_of(ticket: Ticket) -> dict[str, Any]:
    """What the classifier saw and said for *ticket*: rules with words, axes, subject, text."""
    first = first_inbound(ticket)
    return {
        "classification": list(ticket.classification or []),
        "triage": ticket.triage,
        "subject": (first.subject if first is not None else ticket.subject or "")[:500],
        "text": (first.body if first is not None else "")[:MAX_TEXT],
    }


def record_correction(session: Session, ticket: Ticket, kind: str, old: str, new: str, *,
                      actor: str, at: datetime) -> Correction:
    """Keep one correction of *kind* (severity | role) with the ticket's evidence."""
    if kind not in KINDS:
        raise ValueError(f"correction kind {kind!r}; use one of {', '.join(KINDS)}")
    original = ticket.original_severity if kind == "severity" else ticket.original_role
    row = Correction(ticket_id=ticket.id, at=at, actor=actor, kind=kind, old=old, new=new,
                     original=original, evidence=evidence_of(ticket))
    session.add(row)
    return row
