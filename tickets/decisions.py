"""The exit decision: go, conditional go (with the conditions) or no-go, recorded by a project manager.

Why in the domain: a signed ``#decision`` reply (``replies``) and ``hypercare exit decide`` (the
CLI) must check the same words and store the same row, and the exit report and the dashboard
read it back.  Only a ``[[team]]`` member with the ``project_manager`` role may decide; the text
is kept as written (control characters removed, length capped), never interpreted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config, TeamMember
from core.errors import UserError
from tickets.models import ExitDecision

DECISIONS = ("go", "conditional", "no-go")
DECIDER_ROLE = "project_manager"
MAX_TEXT = 2000
_DECISION = re.compile(r"^(?P<word>conditional(?:[ _-]?go)?|no[ _-]?go|go)(?![\w-])[\s:,.;-]*(?P<text>.*)$",
                       re.IGNORECASE | re.DOTALL)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")
WORDS = {"go": "GO", "conditional": "CONDITIONAL GO", "no-go": "NO-GO"}


class DecisionProblem(UserError):
    """A decision that cannot be recorded as given (unknown word, missing conditions, not a PM)."""


@dataclass(frozen=True)
class ParsedDecision:
    decision: str
    text: str


def parse_decision(arg: str, *, need_conditions: bool = True) -> ParsedDecision:
    """``go [comment]``, ``conditional <conditions>``, ``no-go [reason]`` (also "conditional go", "no go");
    raises DecisionProblem with one line."""
    cleaned = _CONTROL.sub(" ", arg).strip()
    match = _DECISION.match(cleaned)
    if match is None:
        word = cleaned.split(None, 1)[0][:40] if cleaned else ""
        raise DecisionProblem(f"unknown decision {word!r}; use one of {', '.join(DECISIONS)}" if word
                              else f"needs one of {', '.join(DECISIONS)}")
    word = re.sub(r"[\s_-]+", "", match["word"].lower())
    decision = {"go": "go", "conditional": "conditional", "conditionalgo": "conditional", "nogo": "no-go"}[word]
    text = match["text"].strip()[:MAX_TEXT]
    if decision == "conditional" and not text and need_conditions:
        raise DecisionProblem("conditional needs its conditions, e.g. 'conditional HC-12 fixed by Friday'")
    return ParsedDecision(decision, text)


def decider(config: Config, address: str) -> TeamMember:
    """The ``[[team]]`` project manager with *address*, else DecisionProblem naming what to fix."""
    member = config.team_member(address)
    if member is None or DECIDER_ROLE not in member.roles:
        raise DecisionProblem(f"{address[:200]!r} may not record the exit decision: only a [[team]] member with "
                              f"the {DECIDER_ROLE} role may")
    return member


def record_decision(session: Session, parsed: ParsedDecision, member: TeamMember, at: datetime, via: str,
                    message_id: str | None = None) -> ExitDecision:
    row = ExitDecision(decision=parsed.decision, text=parsed.text, actor=member.email.lower(),
                       actor_name=member.name, at=at, via=via, message_id=message_id)
    session.add(row)
    session.flush()
    return row


def latest_decision(session: Session) -> ExitDecision | None:
    return session.scalar(select(ExitDecision).order_by(ExitDecision.at.desc(), ExitDecision.id.desc()).limit(1))
