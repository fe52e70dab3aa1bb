"""Whose mail bounces, and which of them the desk must never silence: the team and the stakeholders.

Why in the domain: intake records a bounce (only for mail we really sent it, see
``intake.guards.rules._bounced``), the outbox decides whom to leave out, and status, the dashboard and
the daily digest show the people whose address bounced.  A team member or stakeholder is never left
out: a suppressed P1 page nobody hears about is worse than a failed attempt, so their mail is still
attempted and the bounce is shown instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Config
from tickets.models import BouncingRecipient


def protected_addresses(config: Config) -> frozenset[str]:
    """Team members and stakeholders (lower case): reported when they bounce, never suppressed."""
    people = [m.email for m in config.team]
    people += [*config.stakeholders.daily, *config.stakeholders.weekly]
    return frozenset(a.strip().lower() for a in people if a.strip())


@dataclass(frozen=True)
class BouncingPerson:
    email: str
    role: str  # team | stakeholder
    count: int
    last_at: datetime
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"email": self.email, "role": self.role, "count": self.count,
                "last_at": self.last_at.isoformat(), "reason": self.reason}

    def line(self) -> str:
        return f"{self.email} ({self.role}): {self.count} bounce(s), last {self.last_at:%Y-%m-%d %H:%M} UTC"


def bouncing_people(session: Session, config: Config) -> list[BouncingPerson]:
    """Team members and stakeholders whose address a bounce of our mail named (mail to them still goes out)."""
    protected = protected_addresses(config)
    if not protected:
        return []
    team = {m.email.lower() for m in config.team}
    rows = session.scalars(select(BouncingRecipient).where(func.lower(BouncingRecipient.email).in_(sorted(protected)))
                           .order_by(BouncingRecipient.last_at.desc()))
    return [BouncingPerson(r.email.lower(), "team" if r.email.lower() in team else "stakeholder", r.count, r.last_at,
                           r.reason[:200]) for r in rows]
