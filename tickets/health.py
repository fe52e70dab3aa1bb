"""Is the desk hearing and speaking?  The one health model behind ``status``, ``/healthz`` and the dashboard.

Why one module: the three used to judge a mailbox by different rules (one had no staleness
limit), so ``status`` said ok while ``/healthz`` said failing; and after three hours of unreachable
relay ``status`` still said ok (issue 11).  Each part here has one ``problem`` rule: mailboxes,
the relay, the outbox (dead, stuck claims, old backlog) and the database (busy vs unreachable).
Everything but the database probe reads rows the workers recorded (``ImapState``, ``RelayState``,
``OutboxItem``): a probe never opens an IMAP or SMTP connection of its own, so it is fast and safe
to run from cron or a load balancer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Config, ImapSettings
from tickets.models import ImapState, OutboxItem, RelayState
from tickets.store import DatabaseProbe, probe_database

# A mailbox with no successful poll for this long is failing, whatever its last error says.
# IDLE is refreshed at least every 29 minutes, so 30 minutes (or 10 poll intervals) is the floor.
MIN_STALE = timedelta(minutes=30)
STALE_POLLS = 10
# The relay unreachable this long is reported (shorter outages are ordinary: the outbox backs off).
RELAY_GRACE = timedelta(minutes=5)
# A ``sending`` row whose claim expired this long ago: the worker died and no other took the row over.
STUCK_CLAIM = timedelta(minutes=2)
# Mail not delivered this long after it was queued (relay refusing, greylisting without end).
PENDING_TOO_OLD = timedelta(hours=1)
DATABASE_PROBE_SECONDS = 2.0


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
    stuck_claims: int = 0  # ``sending`` rows whose claim expired STUCK_CLAIM ago: no worker is sending

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self, now: datetime) -> list[str]:
        """Why the outbox needs attention (empty when it does not): dead mail, stuck claims, old backlog."""
        found = []
        if self.dead:
            found.append(f"{self.dead} dead item(s)")
        if self.stuck_claims:
            found.append(f"{self.stuck_claims} claim(s) expired unsent (is any instance running the outbox?)")
        if self.oldest_pending_at is not None and now - self.oldest_pending_at > PENDING_TOO_OLD:
            found.append(f"oldest unsent mail waiting {_minutes(now - self.oldest_pending_at)} min")
        return found


def outbox_counts(session: Session, now: datetime | None = None) -> OutboxCounts:
    counts: dict[str, int] = {status: int(n) for status, n in session.execute(
        select(OutboxItem.status, func.count(OutboxItem.id)).group_by(OutboxItem.status))}
    oldest = session.scalar(select(func.min(OutboxItem.created_at))
                            .where(OutboxItem.status.in_(("pending", "sending"))))
    stuck = 0
    if now is not None and counts.get("sending"):
        stuck = session.scalar(select(func.count(OutboxItem.id)).where(
            OutboxItem.status == "sending", OutboxItem.claimed_until < now - STUCK_CLAIM,
            OutboxItem.sent_at.is_(None))) or 0  # sent_at set: sent, only not folded into "sent" yet
    return OutboxCounts(pending=counts.get("pending", 0) + counts.get("sending", 0), dead=counts.get("dead", 0),
                        sent=counts.get("sent", 0), suppressed=counts.get("suppressed", 0),
                        oldest_pending_at=oldest, stuck_claims=int(stuck))


@dataclass(frozen=True)
class RelayHealth:
    relay: str
    configured: bool  # the relay of the current [smtp_out] (others are history)
    problem: str | None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failing_since: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def relay_problem(state: RelayState | None, now: datetime) -> str | None:
    """Unreachable for RELAY_GRACE or longer is a problem; a shorter blip is the backoff's business."""
    if state is None or state.failing_since is None or now - state.failing_since < RELAY_GRACE:
        return None
    return f"unreachable for {_minutes(now - state.failing_since)} min: {state.last_error}"


def relay_health(session: Session, config: Config, now: datetime) -> list[RelayHealth]:
    """Every relay the outbox has talked to, and the configured one even before its first send."""
    states = {s.relay: s for s in session.scalars(select(RelayState).order_by(RelayState.relay))}
    configured = relay_key(config)
    result = []
    for key in sorted({*states, configured}):
        state = states.get(key)
        result.append(RelayHealth(
            relay=key, configured=key == configured, problem=relay_problem(state, now),
            last_success_at=state.last_success_at if state else None,
            last_error=state.last_error if state else None, last_error_at=state.last_error_at if state else None,
            failing_since=state.failing_since if state else None))
    return result


def database_problem(config: Config, timeout: float = DATABASE_PROBE_SECONDS) -> DatabaseProbe:
    """``ok``, ``busy`` (locked by another writer, out of connections) or ``unreachable``, within *timeout*."""
    return probe_database(config.database.url, config.base_dir, timeout)


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)
