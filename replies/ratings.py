"""Reporter feedback: the 1-5 rating asked for in the resolution notice, and the replies that answer it.

Why a signed token: a rating must come from someone who received *that* resolution notice.
The notice carries ``Reply-To: support+rate-HC-12.<token>@domain`` and a ``Feedback reference:
HC-12.<token>`` line (the token is ``ReplyTokens.sign(key, purpose="feedback")``), so a reply
proves itself by the address it was sent to or by the quoted reference.  A forged or foreign
token stores nothing and reopens nothing; it is recorded as ``feedback_rejected``.

Why the strict first line: a reporter who writes "5 users cannot log in again" under the
quoted notice is reopening, not rating.  A rating is the first line being only the number
(``4``, ``4/5``, ``Rating: 4``, ``****``), optionally followed by punctuation and a few words
(``5 - great``); everything below it is the comment.

Configured by ``[notifier] feedback``: ``"on"`` (default), ``"off"``, or a comma-separated list
of phases (``"stabilisation,transition"``) in which resolution notices ask for a rating.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config, ConfigError
from intake.parse.message import ParsedMessage
from intake.thread import ReplyOutcome, ThreadMatch
from tickets.lifecycle import is_participant, record_event
from tickets.models import CLOSED_STATUSES, Feedback, Message, Ticket
from tickets.phases import phase_on
from tickets.tokens import TOKEN_LENGTH, ReplyTokens

PHASES = ("intensive", "stabilisation", "transition", "normal")
MAX_COMMENT = 2000


class FeedbackConfigError(ConfigError):
    """``[notifier] feedback`` cannot be read; the message is the one line shown to the user."""


def parse_feedback_setting(value: str) -> frozenset[str]:
    """``on`` / ``off`` / ``"stabilisation,transition"`` -> the phases in which feedback is asked."""
    text = str(value).strip().lower()
    if text in ("on", "true", "yes", "always"):
        return frozenset(PHASES)
    if text in ("off", "false", "no", "never", ""):
        return frozenset()
    phases = {p.strip() for p in text.split(",") if p.strip()}
    unknown = sorted(phases - set(PHASES))
    if unknown:
        raise FeedbackConfigError(
            f'[notifier] feedback: unknown phase {unknown[0]!r}; use "on", "off" or phases from {", ".join(PHASES)}')
    return frozenset(phases)


@dataclass(frozen=True)
class FeedbackRequest:
    """What the resolution notice needs to ask for a rating (templates/_feedback.*.j2)."""

    key: str
    token: str
    address: str  # Reply-To for the resolution notice
    reference: str  # "HC-12.<token>", quoted back by a plain reply

    def mailto(self, rating: int) -> str:
        """A one-click ``mailto:`` link for the HTML notice (subject and body pre-filled)."""
        from urllib.parse import quote

        subject = quote(f"Rating {rating} [{self.key}]")
        body = quote(f"{rating}\n\n(optional comment)\n\nFeedback reference: {self.reference}\n")
        return f"mailto:{self.address}?subject={subject}&body={body}"


# --- reading a rating --------------------------------------------------------------------------

_RATING_LINE = re.compile(
    r"^\s*(?:(?:rating|score|bewertung|note)\s*[:=]?\s*)?(?P<n>[+-]?\d{1,3})"
    r"(?:\s*(?:/|of|out of|von)\s*5)?(?:\s*(?:stars?|sterne?|points?))?"
    r"\s*(?:(?P<sep>[-–—:.,;!)]+)\s*(?P<rest>.*))?$",
    re.IGNORECASE,
)
_STARS = re.compile(r"^\s*(?P<stars>[*★⭐]{1,9})☆*\s*(?:(?P<sep>[-–—:.,;!]+)\s*(?P<rest>.*))?$")
_SUBJECT_RATING = re.compile(r"\brating\s*[:=]?\s*(?P<n>[+-]?\d{1,3})\b", re.IGNORECASE)


@dataclass(frozen=True)
class ReadRating:
    rating: int  # may be out of range: the caller rejects it
    comment: str


def read_rating(body: str, subject: str = "") -> ReadRating | None:
    """The rating on the first non-empty line of *body* (else ``Rating N`` in *subject*), or None."""
    lines = body.strip().splitlines()
    first, rest = (lines[0], "\n".join(lines[1:])) if lines else ("", "")
    match = _RATING_LINE.match(first)
    if match and (match["rest"] is None or match["sep"]):
        comment = "\n".join(part for part in (match["rest"] or "", rest.strip()) if part)
        return ReadRating(int(match["n"]), _clean_comment(comment))
    match = _STARS.match(first)
    if match and (match["rest"] is None or match["sep"]):
        comment = "\n".join(part for part in (match["rest"] or "", rest.strip()) if part)
        return ReadRating(len(match["stars"]), _clean_comment(comment))
    match = _SUBJECT_RATING.search(subject)
    if match:
        return ReadRating(int(match["n"]), _clean_comment(body))
    return None


def _clean_comment(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines()
             if not ln.lower().startswith("feedback reference:") and ln.strip() != "(optional comment)"]
    return "\n".join(lines).strip()[:MAX_COMMENT]


# --- the desk: asks for feedback, takes the replies ---------------------------------------------


class FeedbackDesk:
    """Builds the request for a resolution notice and handles the replies to it (intake hook)."""

    def __init__(self, config: Config, tokens: ReplyTokens, go_live: Callable[[], date]) -> None:
        self.config = config
        self.tokens = tokens
        self.go_live = go_live  # a callable: go-live may come from the database's birth date
        self.phases = parse_feedback_setting(getattr(config.notifier, "feedback", "on"))
        support = config.support
        self._address = re.compile(
            rf"^{re.escape(support.local_part)}\+rate-(?P<key>{re.escape(support.ticket_prefix)}-\d+)"
            rf"\.(?P<token>[0-9a-f]+)@{re.escape(support.domain)}$", re.IGNORECASE)
        self._reference = re.compile(
            rf"feedback reference:\s*(?P<key>{re.escape(support.ticket_prefix)}-\d+)"
            rf"\.(?P<token>[0-9a-f]{{{TOKEN_LENGTH}}})", re.IGNORECASE)

    def enabled_on(self, when: datetime) -> bool:
        day = when.astimezone(self.config.hypercare.tz).date()
        return phase_on(self.go_live(), day).key in self.phases

    def request_for(self, ticket: Ticket, now: datetime) -> FeedbackRequest | None:
        """The rating request for *ticket*'s resolution notice, or None when feedback is off now."""
        if not self.enabled_on(now):
            return None
        token = self.tokens.sign(ticket.key, purpose="feedback")
        support = self.config.support
        return FeedbackRequest(key=ticket.key, token=token,
                               address=f"{support.local_part}+rate-{ticket.key}.{token}@{support.domain}",
                               reference=f"{ticket.key}.{token}")

    def find_token(self, parsed: ParsedMessage) -> tuple[str, str] | None:
        """(key, token) named by a rate plus-address among the recipients, or by a quoted reference."""
        for address in parsed.all_recipients:
            match = self._address.match(address.strip())
            if match:
                return match["key"].upper(), match["token"]
        match = self._reference.search(parsed.body_full or parsed.body)
        if match:
            return match["key"].upper(), match["token"]
        return None

    def handle(self, session: Session, match: ThreadMatch, message: Message, parsed: ParsedMessage,
               now: datetime) -> ReplyOutcome | None:
        """Store a rating, reject a forged one, or return None so the reply is handled as usual."""
        ticket = match.ticket
        found = self.find_token(parsed) if ticket is not None else None
        if ticket is None or found is None:
            return None
        key, token = found
        sender = parsed.from_addr
        if key != ticket.key or self.config.team_member(sender) is not None:
            return None  # quoting another ticket's notice, or the team: not a rating of this ticket
        if not self.tokens.verify(key, token, purpose="feedback", now=now):
            return self._reject(session, ticket, message, now, sender, "invalid feedback token")
        if ticket.status not in CLOSED_STATUSES:
            return None  # reopened since: this is a reply about the problem, not a rating
        read = read_rating(parsed.body, parsed.subject)
        if read is None:
            return None  # no rating on the first line: a plain reply (it may reopen the ticket)
        if not is_participant(ticket, sender):
            return self._reject(session, ticket, message, now, sender, "sender does not take part in the ticket")
        if not 1 <= read.rating <= 5:
            return self._reject(session, ticket, message, now, sender, f"rating {read.rating} is not between 1 and 5")
        row = session.scalar(select(Feedback).where(Feedback.ticket_id == ticket.id))
        if row is None:
            session.add(Feedback(ticket_id=ticket.id, rating=read.rating, comment=read.comment, at=now))
        else:  # the latest answer counts: the reporter changed their mind
            row.rating, row.comment, row.at = read.rating, read.comment, now
        message.disposition = "feedback"
        first = read.comment.splitlines()[0][:200] if read.comment else ""
        record_event(session, ticket, "feedback", now, actor=sender,
                     detail=f"rating {read.rating}/5" + (f": {first}" if first else ""),
                     data={"rating": read.rating}, message_row_id=message.id)
        return ReplyOutcome("feedback", ticket, f"rating {read.rating}")

    def _reject(self, session: Session, ticket: Ticket, message: Message, now: datetime, sender: str,
                reason: str) -> ReplyOutcome:
        message.disposition = "comment"
        record_event(session, ticket, "feedback_rejected", now, actor=sender, detail=reason,
                     message_row_id=message.id)
        return ReplyOutcome("feedback-rejected", ticket, reason)
