"""The team's one alert when a sender floods the desk (``intake.flood``): who, how much, where it went.

Why a notice at all: past ``[intake] flood_per_hour`` the sender gets no acknowledgements and their
new mail is grouped into one ticket, so nobody outside the team would notice; the role's members and
the on-call person hear once per flood (the first grouped mail), with the ticket's signed Reply-To.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from config import Config
from notifier.outbox import short_key
from notifier.team_notice import Headline, TeamNotices, team_members_for
from tickets.models import Message, Ticket


class FloodAlert:
    def __init__(self, config: Config, notices: TeamNotices) -> None:
        self.config = config
        self.notices = notices

    def enqueue(self, session: Session, ticket: Ticket, message: Message, now: datetime) -> None:
        limit = self.config.intake.flood_per_hour
        headline = Headline(
            "Mail flood",
            f"{message.from_addr} has opened {limit} or more tickets within an hour. Further new mail from this "
            f"address gets no acknowledgement and is grouped into {ticket.key}; replies still thread as usual. "
            "Please check whether this is a real incident or a misbehaving system.")
        to = team_members_for(self.config, ticket, on_call=True)
        self.notices.enqueue(session, ticket, kind="flood", headline=headline, to=to,
                             key=f"flood:{short_key(message.message_id)}", now=now)
