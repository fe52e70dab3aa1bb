"""Which digest is due now, and sending each scheduled one exactly once.

Why period keys: the beat runs every few seconds in ``hypercare run``, every minute
from cron with ``hypercare tick``, maybe in two instances at once, and restarts at
any time.  Each scheduled send has a period key (the local day it belongs to); the
``ScheduleRun`` row with ``unique(job, period_key)`` is inserted in the same
transaction that queues the mail, so whoever inserts it first sends and everyone else
finds it taken.  Only the *latest* scheduled instant at or before now is ever
considered, so after downtime the latest missed digest goes out once, never a backlog
of stale ones; one older than ``MAX_LATENESS`` is not worth sending at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Config
from notifier.digests.builder import DigestBuilder
from notifier.mime import OutgoingMail
from notifier.outbox import enqueue
from tickets.clock import as_utc
from tickets.models import ScheduleRun
from tickets.phases import status_due_on, weekly_summary_due_on
from tickets.store import Store

log = logging.getLogger("hypercare.scheduler")

MAX_LATENESS = timedelta(days=7)
# How often one digest is queued again after a uniqueness error that is not its own period key.
RECORD_ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    """A scheduled digest: its name (= template key) and the rule for which local days it is due."""

    name: str
    due_on: Callable[[date], bool]


@dataclass(frozen=True)
class DueRun:
    job: str
    period_key: str  # the local day, ISO
    scheduled_at: datetime  # UTC


class DigestScheduler:
    def __init__(self, config: Config, store: Store, builder: DigestBuilder, go_live: date) -> None:
        self.config = config
        self.store = store
        self.builder = builder
        self.go_live = go_live
        self.tz: ZoneInfo = config.hypercare.tz
        self.at: time = config.hypercare.digest_time
        weekday = config.hypercare.weekly_summary_day
        self.jobs = (
            Job("status_daily", lambda day: status_due_on(go_live, day)),
            Job("weekly_summary", lambda day: weekly_summary_due_on(go_live, day, weekday)),
            Job("exit_report", lambda day: day == builder.exit_day),
        )

    def scheduled_at(self, day: date) -> datetime:
        return as_utc(datetime.combine(day, self.at, tzinfo=self.tz))

    def latest(self, job: Job, now: datetime) -> DueRun | None:
        """The latest scheduled instant of *job* at or before *now*, within MAX_LATENESS."""
        today = now.astimezone(self.tz).date()
        for back in range(MAX_LATENESS.days + 1):
            day = today - timedelta(days=back)
            when = self.scheduled_at(day)
            if when <= now and job.due_on(day):
                return DueRun(job.name, day.isoformat(), when) if now - when <= MAX_LATENESS else None
        return None

    def due(self, now: datetime) -> list[DueRun]:
        """Scheduled sends whose time has come and that nobody has recorded yet (cheap: reads only)."""
        candidates = [run for job in self.jobs if (run := self.latest(job, now)) is not None]
        if not candidates:
            return []
        with self.store.read() as session:
            done = set(session.execute(select(ScheduleRun.job, ScheduleRun.period_key).where(
                ScheduleRun.job.in_([c.job for c in candidates]),
                ScheduleRun.period_key.in_([c.period_key for c in candidates]))).all())
        return [c for c in candidates if (c.job, c.period_key) not in done]

    def run(self, now: datetime) -> list[str]:
        """Queue every due digest once; return one line per digest handled (for ``tick``)."""
        return [self._send(run, now) for run in self.due(now)]

    def next_sends(self, now: datetime, horizon_days: int = 35) -> list[tuple[str, datetime]]:
        """The next scheduled instant of each job after *now* (for ``hypercare status``)."""
        today = now.astimezone(self.tz).date()
        result = []
        for job in self.jobs:
            for ahead in range(horizon_days + 1):
                day = today + timedelta(days=ahead)
                if job.due_on(day) and self.scheduled_at(day) > now:
                    result.append((job.name, self.scheduled_at(day)))
                    break
        return result

    def _send(self, run: DueRun, now: datetime) -> str:
        recipients = self.builder.recipients(run.job)
        if not recipients:
            # Not recorded: once stakeholders are configured, today's digest still goes out (late).
            log.debug("digest %s %s skipped: no recipients configured", run.job, run.period_key)
            return f"{run.job} {run.period_key}: skipped, no recipients configured"
        # Render outside the write transaction: a digest over 100k tickets must not hold the lock.
        with self.store.read() as session:
            since = self.builder.last_status_at(session, now) if run.job == "status_daily" else None
        # The exit report is also one mail per project manager, with their own signed reply address.
        mails = self.builder.mails(run.job, now, since)
        detail: str | None = None
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                detail = self._record(run, mails, len(recipients), now)
                break
            except IntegrityError as error:
                # Resolved by looking: only our own period key taken means "sent"; a uniqueness error
                # of anything else (an outbox key, a row id) would otherwise lose the digest silently.
                if self._recorded(run):
                    return f"{run.job} {run.period_key}: already sent by another instance"
                reason = " ".join(str(error.orig or error).split())[:300]
                if attempt == RECORD_ATTEMPTS:
                    log.error("digest %s %s not queued after %d attempts: %s", run.job, run.period_key,
                              attempt, reason)
                    raise
                log.warning("digest %s %s: uniqueness conflict that is not its period key (attempt %d of %d), "
                            "trying again: %s", run.job, run.period_key, attempt, RECORD_ATTEMPTS, reason)
        if detail is None:
            return f"{run.job} {run.period_key}: already sent by another instance"
        late = now - run.scheduled_at
        lateness = f" ({int(late.total_seconds() // 60)} min late)" if late > timedelta(minutes=5) else ""
        log.info("digest %s %s %s%s", run.job, run.period_key, detail, lateness)
        return f"{run.job} {run.period_key}: {detail}{lateness}"

    def _record(self, run: DueRun, mails: list[tuple[str, OutgoingMail]], recipients: int,
                now: datetime) -> str | None:
        """Queue the digest's mails and take its period key in one transaction; None when the key is taken."""
        with self.store.session() as session:
            if self._taken(session, run):
                return None
            ids = [enqueue(session, mail, key=":".join(filter(None, ("digest", run.job, run.period_key, suffix))),
                           support=self.config.support, now=now).id for suffix, mail in mails]
            items = f"outbox item {ids[0]}" if len(ids) == 1 else f"outbox items {', '.join(map(str, ids))}"
            detail = f"queued {items} for {recipients} recipient(s)"
            session.add(ScheduleRun(job=run.job, period_key=run.period_key, ran_at=now, detail=detail))
            session.flush()
        return detail

    def _recorded(self, run: DueRun) -> bool:
        """Has someone (a second instance, a second tick) taken *run*'s period key?  A fresh look."""
        with self.store.read() as session:
            return self._taken(session, run)

    @staticmethod
    def _taken(session: Session, run: DueRun) -> bool:
        return session.scalar(select(ScheduleRun.id).where(
            ScheduleRun.job == run.job, ScheduleRun.period_key == run.period_key)) is not None
