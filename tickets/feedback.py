"""The reporters' ratings in a period: the one set of figures the dashboard and the digests show.

Why in the domain: the dashboard and the weekly summary must agree to the decimal; reading a
rating from a reply is the replies room's business (``replies.ratings``), counting them is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tickets.models import Event, Feedback, Ticket

THANKS = "thanks"  # the event of a thank-you reply on a resolved ticket (replies.gratitude): positive feedback
LOW_RATING = 2  # ratings at or below this show their comments on the dashboard and in digests


@dataclass
class FeedbackSummary:
    """Ratings in a period: what the dashboard and the digests show."""

    count: int = 0
    average: float | None = None
    distribution: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))
    low: list[dict[str, Any]] = field(default_factory=list)  # {"key", "rating", "comment", "at"}, newest first
    thanks: int = 0  # thank-you replies on resolved tickets: positive feedback without a rating (issue 14)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "average": self.average, "thanks": self.thanks,
                "distribution": {str(k): v for k, v in self.distribution.items()}, "low": self.low}


def feedback_summary(session: Session, since: datetime | None = None, until: datetime | None = None,
                     low_limit: int = 10) -> FeedbackSummary:
    """Count, average, distribution and low-score comments of ratings given in [since, until)."""
    where = []
    if since is not None:
        where.append(Feedback.at >= since)
    if until is not None:
        where.append(Feedback.at < until)
    summary = FeedbackSummary()
    for rating, n in session.execute(select(Feedback.rating, func.count(Feedback.id)).where(*where)
                                     .group_by(Feedback.rating)):
        summary.distribution[int(rating)] = int(n)
    summary.count = sum(summary.distribution.values())
    if summary.count:
        total = sum(r * n for r, n in summary.distribution.items())
        summary.average = round(total / summary.count, 2)
    low = (select(Ticket.key, Feedback.rating, Feedback.comment, Feedback.at)
           .join(Ticket, Ticket.id == Feedback.ticket_id)
           .where(Feedback.rating <= LOW_RATING, *where).order_by(Feedback.at.desc()).limit(low_limit))
    summary.low = [{"key": k, "rating": r, "comment": c, "at": at} for k, r, c, at in session.execute(low)]
    thanks = [Event.kind == THANKS]
    if since is not None:
        thanks.append(Event.at >= since)
    if until is not None:
        thanks.append(Event.at < until)
    summary.thanks = int(session.scalar(select(func.count(Event.id)).where(*thanks)) or 0)
    return summary
