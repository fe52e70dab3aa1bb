"""Small operations on tickets that every room performs the same way.

Why one place: an audit event must accompany every change, and the ticket key
format is a user contract (``HC-<n>``); writing these twice is how they drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Config
from tickets.models import Event, Message, Participant, Ticket
from tickets.our_mail import is_our_address
from tickets.store import next_number

# The audit event of a team reply that was refused (no valid token, unreadable command): the replies
# room records it, ``hypercare status`` counts it.
REFUSED = "refused"


def refusal_counts(session: Session, since: datetime) -> dict[str, int]:
    """Refused team replies since *since*: how many, how many were answered, how many senders."""
    rows = session.execute(select(Event.actor, Event.data).where(Event.kind == REFUSED, Event.at >= since)).all()
    answered = sum(1 for _actor, data in rows if (data or {}).get("answered"))
    return {"refused": len(rows), "answered": answered, "quiet": len(rows) - answered,
            "senders": len({actor for actor, _data in rows})}


def ticket_key(prefix: str, number: int) -> str:
    return f"{prefix}-{number}"


# One sequence for every prefix: ``tickets.number`` is unique across prefixes, so a counter per prefix
# restarted at 1 after a change of ``[support] ticket_prefix`` and every new ticket collided (issue 11).
# Created on first use above the highest number stored, so a desk that counted per prefix continues.
TICKET_COUNTER = "ticket"


def allocate_key(session: Session, prefix: str) -> tuple[int, str]:
    return allocate_keys(session, prefix, 1)[0]


# The counter row's start when it is missing (built once: it is passed on every allocation).
_HIGHEST_NUMBER = select(func.coalesce(func.max(Ticket.number), 0)).scalar_subquery()


def allocate_keys(session: Session, prefix: str, count: int) -> list[tuple[int, str]]:
    """*count* consecutive ticket numbers (from the one sequence that survives a prefix change) and
    their keys, with one counter update (the batched write path takes a whole batch at once)."""
    last = next_number(session, TICKET_COUNTER, floor=_HIGHEST_NUMBER, count=count)
    return [(number, ticket_key(prefix, number)) for number in range(last - count + 1, last + 1)]


# A P1 that arrived past its sender's flood limit opened a ticket of its own (intake.flood): it is paged
# like any P1, but the flood rule still holds for the reporter - no acknowledgement.
FLOOD_OPENED = "flood_opened"


def opened_in_flood(ticket: Ticket) -> bool:
    """True for a ticket opened past its sender's flood limit (its acknowledgement is not sent)."""
    return any(event.kind == FLOOD_OPENED for event in ticket.events)


def record_event(
    session: Session,
    ticket: Ticket,
    kind: str,
    at: datetime,
    *,
    actor: str = "system",
    detail: str = "",
    data: dict[str, Any] | None = None,
    message_row_id: int | None = None,
    message: Message | None = None,
) -> Event:
    """An audit event; pass *message* (the object) when it may not be flushed yet, else its id."""
    event = Event(ticket=ticket, kind=kind, at=at, actor=actor, detail=detail, data=data or {},
                  message_id=message_row_id)
    if message is not None:
        event.message = message
    session.add(event)
    ticket.updated_at = at
    return event


def add_participant(session: Session, ticket: Ticket, email: str, kind: str) -> None:
    email = email.lower()
    if not email:
        return
    if any(p.email == email for p in ticket.participants):
        return
    participant = Participant(email=email, kind=kind)
    ticket.participants.append(participant)
    session.add(participant)


@dataclass(frozen=True)
class CcChoice:
    """Who of a new request's Cc/To becomes a participant (hears every answer), and who does not, why."""

    kept: tuple[str, ...]
    outside: tuple[str, ...]  # not the reporter's domain nor a team domain
    over_cap: tuple[str, ...]  # allowed, but beyond ``[replies] cc_limit``

    def event_data(self, limit: int) -> dict[str, Any]:
        return {"limit": limit, "kept": len(self.kept), "outside": len(self.outside),
                "over_cap": len(self.over_cap), "not_added": [*self.outside, *self.over_cap][:20]}


def choose_cc(config: Config, reporter: str, addresses: list[str]) -> CcChoice:
    """The copied people of a new request who become participants.

    Why bounded (issue 13): every public answer goes to the reporter and the participants, under the
    reporter's subject; a request copied to 500 outside addresses must not make the desk mail 501
    people.  Automatic participants are the reporter's colleagues (their domain) or the team's
    domains, at most ``[replies] cc_limit``; anyone else is added by a team member (``#cc add``).
    Team members and our own addresses are skipped (they never get public answers).
    """
    domains = {reporter.rpartition("@")[2].lower()} | {m.email.rpartition("@")[2].lower() for m in config.team}
    team = {m.email.lower() for m in config.team}
    limit = config.replies.cc_limit
    kept: list[str] = []
    outside: list[str] = []
    over: list[str] = []
    for address in dict.fromkeys(a.lower() for a in addresses):
        if not address or address == reporter.lower() or address in team \
                or is_our_address(config.support, address):
            continue
        if address.rpartition("@")[2] not in domains:
            outside.append(address)
        elif len(kept) >= limit:
            over.append(address)
        else:
            kept.append(address)
    return CcChoice(tuple(kept), tuple(outside), tuple(over))


def is_participant(ticket: Ticket, email: str) -> bool:
    email = email.lower()
    return any(p.email == email for p in ticket.participants)


def find_by_key(session: Session, key: str) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.key == key.upper()))


def first_inbound(ticket: Ticket) -> Message | None:
    """The mail that opened the ticket (the first one we received), for quoting and threading."""
    return next((m for m in ticket.messages if m.direction == "in"), None)


def reporter_recipients(config: Config, ticket: Ticket) -> list[str]:
    """Who hears a public answer: the reporter and the people they copied; never the team or us."""
    team = {m.email.lower() for m in config.team}
    chosen: dict[str, None] = {ticket.reporter.lower(): None}
    for p in ticket.participants:
        if p.kind == "cc" and p.email not in team and not is_our_address(config.support, p.email):
            chosen.setdefault(p.email, None)
    return list(chosen)


def first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line, for an audit event's one-line detail."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""
