"""Floods limit acknowledgements, never hearing: what happens past ``[intake] flood_per_hour``.

Why a stage after threading (it was a guard before it): the guard stored every further mail of a
sender as "ignored" before threading, so ten forged mails "From: ada@" made Ada's genuine signed
``#ack`` vanish, a key user's real P1 and his reply on his own ticket were dropped, and a genuine burst
of 500 mails gave 10 tickets and 490 silent drops.  Now replies and signed team mail thread as always
(threading runs first), and a *new* request past the limit is grouped into the sender's latest open
ticket (else their latest ticket) without an acknowledgement; the team is alerted once per flood.
Only a machine loop - the same subject from the same sender past the limit within the hour - is still
cut off and recorded as ignored (rule ``loop``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.parse.message import ParsedMessage
from tickets.models import OPEN_STATUSES, Message, Ticket

WINDOW = timedelta(hours=1)
GROUPED = "grouped"  # Message.disposition of mail grouped into a ticket by a flood
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|aw|fwd?|wg|sv|antw)\s*:\s*)+", re.I)

# (session, the ticket the flood is grouped into, the first grouped mail, now): the team's alert, once.
FloodHook = Callable[[Session, Ticket, Message, datetime], None]


@dataclass(frozen=True)
class FloodVerdict:
    action: str  # "grouped" | "loop"
    detail: str
    ticket: Ticket | None = None  # where a grouped mail goes
    first: bool = False  # the first grouped mail of this flood: alert the team


def must_page_in_flood(severity: str, grouped_into: Ticket | None) -> bool:
    """Whether a new request past the flood limit must open a ticket of its own after all.

    Why (issue 14): grouping kept a flooding sender's P1 ("the CRM is down") on their latest ticket
    without a page, so an outage reported by a busy key user reached nobody.  A P1 opens its own
    ticket - still without an acknowledgement (``tickets.lifecycle.FLOOD_OPENED``) - and is paged
    like any P1 (or joins its incident; the page-storm limit still holds).  Once that P1 is open, the
    sender's further mail is grouped into it (it is their latest open ticket), so a flood of P1
    mails opens one ticket and pages once, not once per mail.
    """
    if severity != "P1":
        return False
    return grouped_into is None or grouped_into.severity != "P1" or grouped_into.status not in OPEN_STATUSES


def _same_subject(subject: str) -> str:
    return _REPLY_PREFIX.sub("", subject).strip().lower()


class FloodControl:
    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, session: Session, parsed: ParsedMessage, now: datetime,
              opened_last_hour: int) -> FloodVerdict | None:
        """None below the limit; else whether this new request is a machine loop or is grouped."""
        sender = parsed.from_addr.lower()
        if not sender or opened_last_hour < self.limit:
            return None
        since = now - WINDOW
        subject = _same_subject(parsed.subject)
        recent = session.scalars(select(Message.subject).where(
            Message.from_addr == sender, Message.direction == "in", Message.received_at > since).limit(2000)).all()
        repeats = sum(1 for s in recent if _same_subject(s) == subject)
        if repeats >= self.limit:
            return FloodVerdict("loop", f"the same subject {repeats} times from {sender} within the hour "
                                        f"(limit {self.limit}): a mail loop")
        ticket = session.scalars(select(Ticket).where(Ticket.reporter == sender)
                                 .order_by((Ticket.status.in_(OPEN_STATUSES)).desc(), Ticket.created_at.desc(),
                                           Ticket.id.desc()).limit(1)).first()
        if ticket is None:  # the counted tickets were deleted meanwhile: nothing to group into
            return None
        grouped_before = session.scalar(select(func.count(Message.id)).where(
            Message.from_addr == sender, Message.disposition == GROUPED, Message.received_at > since)) or 0
        return FloodVerdict(GROUPED, f"flood: {opened_last_hour} tickets from {sender} within the hour "
                                     f"(limit {self.limit}); grouped into {ticket.key}, not acknowledged",
                            ticket, first=grouped_before == 0)
