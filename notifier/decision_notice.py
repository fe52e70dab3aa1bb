"""The confirmation of the exit decision to the stakeholders and the project manager who recorded it.

Why a mail of its own: the decision ends hypercare (or extends it with conditions); everyone who got
the exit report must learn it from the desk, with who decided, when and the conditions, not from a
forwarded reply.  One mail per recorded decision (idempotency key = the decision's id).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from config import Config
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue
from notifier.render import Renderer
from tickets.decisions import WORDS
from tickets.models import ExitDecision, OutboxItem

TEMPLATE = "exit_decision"


def decision_recipients(config: Config, decision: ExitDecision) -> list[str]:
    """Everyone who gets the exit report, and the decider, once each."""
    people = [*config.stakeholders.daily, *config.stakeholders.weekly, decision.actor]
    return list(dict.fromkeys(p.lower() for p in people))


def enqueue_decision_notice(session: Session, config: Config, renderer: Renderer, decision: ExitDecision,
                            now: datetime) -> OutboxItem:
    rendered = renderer.render(TEMPLATE, decision=decision, word=WORDS[decision.decision], support=config.support,
                               tz=config.hypercare.tz)
    mail = OutgoingMail(kind=TEMPLATE, to=decision_recipients(config, decision), subject=rendered.subject,
                        text=rendered.text, html=rendered.html, auto_submitted="auto-generated",
                        extra_headers={"Precedence": "bulk"})
    return enqueue(session, mail, key=f"{TEMPLATE}:{decision.id}", support=config.support, now=now)
