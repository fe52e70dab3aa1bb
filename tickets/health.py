"""Is the desk hearing and speaking?  The one health model behind ``status``, ``/healthz`` and the dashboard.

Why one module: the three used to judge a mailbox by different rules (one had no staleness
limit), so ``status`` said ok while ``/healthz`` said failing.  Everything here reads rows the
workers recorded (``ImapState``, ``OutboxItem``): a probe never opens an IMAP or SMTP
connection of its own, so it is fast and safe to run from cron or a load balancer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Config, ImapSettings
from tickets.models import ImapState, OutboxItem

# A mailbox with no successful poll for this long is failing, whatever its last error says.
# IDLE is refreshed at least every 29 minutes, so 30 minutes (or 10 poll intervals) is the floor.
MIN_STALE = timedelta(minutes=30)
STALE_POLLS = 10


def relay_key(config: Config) -> str:
    """The RelayState key: the relay's ``host:port``, or ``maildir`` for the embedded local delivery."""
    out = config.smtp_out
    return f"{out.host}:{out.port}" if out.host else "maildir"


def mailbox_key(settings: ImapSettings) -> str:
    """The ImapState key: one row per account and folder, stable across restarts."""
    return f"{settings.username}@{settings.host}:{settings.port}/{settings.folder}"


@dataclass(frozen=True)
class MailboxHealth:
    mailbox: str
    configured: bool  # the mailbox of the current [imap] section (others are history)
    problem: str | None  # one line, or None when healthy
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    waiting: int | None = None
    uidvalidity: int | None = None
    last_uid: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def mailbox_problem(state: ImapState | None, config: Config, now: datetime) -> str | None:
    """Why a mailbox is unhealthy, or None: a fresher error than success, or no success for too long."""
    if state is None or (state.last_success_at is None and not state.last_error):
        return "not polled yet"
    if state.last_error and (state.last_success_at is None or (
            state.last_error_at is not None and state.last_error_at > state.last_success_at)):
        return f"last poll failed: {state.last_error}"
    assert state.last_success_at is not None
    poll = config.imap.poll_seconds if config.imap is not None else 30
    stale = max(MIN_STALE, timedelta(seconds=STALE_POLLS * poll))
    if now - state.last_success_at > stale:
        minutes = int((now - state.last_success_at).total_seconds() // 60)
        return f"no successful poll for {minutes} min"
    return None


def mailbox_health(session: Session, config: Config, now: datetime) -> list[MailboxHealth]:
    """Every mailbox ever polled, and the configured one even before its first poll."""
    states = {s.mailbox: s for s in session.scalars(select(ImapState).order_by(ImapState.mailbox))}
    configured = mailbox_key(config.imap) if config.imap is not None else None
    result = []
    for key in sorted({*states, *([configured] if configured else [])}):
        state = states.get(key)
        result.append(MailboxHealth(
            mailbox=key, configured=key == configured, problem=mailbox_problem(state, config, now),
            last_success_at=state.last_success_at if state else None,
            last_error=state.last_error if state else None, last_error_at=state.last_error_at if state else None,
            waiting=state.waiting if state else None, uidvalidity=state.uidvalidity if state else None,
            last_uid=state.last_uid if state else None))
    return result


@dataclass(frozen=True)
class OutboxCounts:
    pending: int  # pending + sending: not yet delivered
    dead: int
    sent: int
    suppressed: int
    oldest_pending_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outbox_counts(session: Session) -> OutboxCounts:
    counts: dict[str, int] = {status: int(n) for status, n in session.execute(
        select(OutboxItem.status, func.count(OutboxItem.id)).group_by(OutboxItem.status))}
    oldest = session.scalar(select(func.min(OutboxItem.created_at))
                            .where(OutboxItem.status.in_(("pending", "sending"))))
    return OutboxCounts(pending=counts.get("pending", 0) + counts.get("sending", 0), dead=counts.get("dead", 0),
                        sent=counts.get("sent", 0), suppressed=counts.get("suppressed", 0),
                        oldest_pending_at=oldest)
