"""The triage digest: new P3/P4 tickets reach their owners batched, at fixed local times.

Why (issue 14): the triage notice tells a role's members about every new ticket at creation; for
P3/P4, whose first response is hours or a sprint away, a site may prefer one mail at a few fixed
times (``[triage] low_severity = "digest"``, ``digest_times``, local time of ``[hypercare] timezone``,
business days only).  Each member holding the role gets one mail per slot listing the P3/P4 tickets
opened since the last digest (the ones without a ``triaged`` event), each with the classifier's
reasons and its *own* reply address: ``support+HC-12.<token>@``, the same credential as a team
mail's ``Reply-To`` (bound to ticket and member, expiring).  The stored mail holds the unsigned
placeholder; the outbox signs each address for the one recipient when it sends
(``notifier.send_time``), so a member acts on a ticket by writing to that ticket's address.

Once per member per slot: the ``ScheduleRun`` row (job ``triage_digest``, period = local day and time),
the outbox rows (``triage-digest:<period>><member>``) and each listed ticket's ``triaged`` event are
written in one transaction; a restart, a second instance or two beats in the same minute send once.
After downtime only the latest missed slot is sent (its list holds everything untriaged).  A mail
lists at most ``digest_max_tickets``, then "and N more" with the dashboard's address: thousands of
new tickets in one slot make one bounded mail, not a megabyte.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config import Config
from notifier.labels import role_label, severity_label
from notifier.mime import OutgoingMail, sanitize_header_text
from notifier.outbox import enqueue
from notifier.render import Renderer
from notifier.send_time import FILL_HEADER, REPLY_ADDRESSES
from notifier.team_notice import team_members_for
from tickets.business_calendar import BusinessCalendar
from tickets.clock import Clock, as_utc
from tickets.incidents import is_follow_up
from tickets.lifecycle import record_event
from tickets.models import OPEN_STATUSES, Event, ScheduleRun, Ticket
from tickets.sla import SlaPolicy
from tickets.store import Store
from tickets.tokens import ReplyTokens

log = logging.getLogger("hypercare.triage")

JOB = "triage_digest"
KIND = "triage_digest"
BATCHED = ("P3", "P4")  # the severities a digest may carry; P1/P2 are always told at once
LOOK_BACK = timedelta(days=14)  # how far back an untriaged ticket is still listed (a long weekend, holidays)
SUBJECT_CHARS = 70
REASON_CHARS = 160
REASONS_SHOWN = 3


@dataclass(frozen=True)
class Slot:
    at: datetime  # UTC
    period: str  # local "2026-11-23T09:00": the ScheduleRun key


class TriageDigest:
    def __init__(self, config: Config, store: Store, clock: Clock, renderer: Renderer, tokens: ReplyTokens,
                 sla: SlaPolicy, calendar: BusinessCalendar) -> None:
        self.config = config
        self.settings = config.triage
        self.store = store
        self.clock = clock
        self.renderer = renderer
        self.tokens = tokens
        self.sla = sla
        self.calendar = calendar
        self.tz = config.hypercare.tz

    @property
    def enabled(self) -> bool:
        return self.settings.low_severity == "digest"

    def batches(self, severity: str) -> bool:
        """Whether the triage notice of a new *severity* ticket waits for the digest."""
        return self.enabled and severity in BATCHED

    def latest_slot(self, now: datetime) -> Slot | None:
        """The latest digest time at or before *now* on a business day (within ``LOOK_BACK``)."""
        today = now.astimezone(self.tz).date()
        for back in range(LOOK_BACK.days + 1):
            day = today - timedelta(days=back)
            if not self.calendar.is_business_day(day):
                continue
            for at in reversed(self.settings.digest_times):
                when = as_utc(datetime.combine(day, at, tzinfo=self.tz))
                if when <= now:
                    return Slot(when, f"{day.isoformat()}T{at:%H:%M}")
        return None

    def run(self) -> str:
        """A beat's job: send the latest slot's digests once; one line for ``tick``."""
        if not self.enabled:
            return "off (immediate notices)"
        now = self.clock.now()
        slot = self.latest_slot(now)
        if slot is None:
            return "no slot yet"
        if self._recorded(slot):
            return f"{slot.period}: sent"
        try:
            with self.store.session() as session:
                detail = self._send(session, slot, now)
                session.add(ScheduleRun(job=JOB, period_key=slot.period, ran_at=now, detail=detail))
                session.flush()
        except IntegrityError:
            # Only our own period key taken means "another instance sent it"; any other uniqueness error
            # (a stale id sequence after a restore) must not drop the slot: it is raised, nothing is
            # recorded, and the next beat tries again (as DigestScheduler does).
            if self._recorded(slot):
                return f"{slot.period}: already sent by another instance"
            raise
        log.info("triage digest %s: %s", slot.period, detail)
        return f"{slot.period}: {detail}"

    def _recorded(self, slot: Slot) -> bool:
        with self.store.read() as session:
            return session.scalar(select(ScheduleRun.id).where(
                ScheduleRun.job == JOB, ScheduleRun.period_key == slot.period)) is not None

    def pending(self, session: Session, until: datetime) -> list[Ticket]:
        """Open P3/P4 tickets opened before *until* (the slot) without a triage notice yet, oldest first.

        Why before the slot, not before now: a slot missed while the desk was down (Friday 14:00, seen on
        Monday 08:00) must not send Monday's tickets early; they belong to Monday 09:00.  The incident's
        later reports are left out (the incident was told with its first report).
        """
        triaged = select(Event.id).where(Event.ticket_id == Ticket.id, Event.kind == "triaged").exists()
        tickets = session.scalars(select(Ticket).where(
            Ticket.created_at >= until - LOOK_BACK, Ticket.created_at <= until, Ticket.status.in_(OPEN_STATUSES),
            Ticket.severity.in_(BATCHED), ~triaged).order_by(Ticket.created_at, Ticket.id))
        return [t for t in tickets if not is_follow_up(t)]

    def _send(self, session: Session, slot: Slot, now: datetime) -> str:
        per_member: dict[str, list[Ticket]] = defaultdict(list)
        told: dict[int, list[str]] = defaultdict(list)
        tickets = self.pending(session, slot.at)
        for ticket in tickets:
            for address in team_members_for(self.config, ticket):
                per_member[address].append(ticket)
                told[ticket.id].append(address)
        for address, listed in per_member.items():
            mail = self.mail(address, listed, slot, now)
            enqueue(session, mail, key=f"triage-digest:{slot.period}>{address}"[:200], support=self.config.support,
                    now=now)
        for ticket in tickets:
            if told[ticket.id]:
                record_event(session, ticket, "triaged", now,
                             detail=f"in the triage digest of {slot.period} to {', '.join(told[ticket.id])}",
                             data={"recipients": told[ticket.id], "digest": slot.period})
        return f"{len(per_member)} digest(s) listing {sum(1 for t in tickets if told[t.id])} ticket(s)"

    def mail(self, address: str, listed: list[Ticket], slot: Slot, now: datetime) -> OutgoingMail:
        limit = self.settings.digest_max_tickets
        member = self.config.team_member(address)
        rendered = self.renderer.render(
            KIND, member_name=member.name if member is not None else address, slot=slot.at.astimezone(self.tz),
            tickets=[self.line(t) for t in listed[:limit]], more=max(0, len(listed) - limit), total=len(listed),
            dashboard=self.dashboard_url(), token_days=round(self.tokens.lifetime.total_seconds() / 86400),
            support=self.config.support, tz=self.tz)
        return OutgoingMail(kind=KIND, to=[address], subject=rendered.subject, text=rendered.text,
                            html=rendered.html, auto_submitted="auto-generated",
                            extra_headers={FILL_HEADER: REPLY_ADDRESSES})

    def line(self, ticket: Ticket) -> dict[str, Any]:
        """One listed ticket as plain, bounded, printable values; its reply address as the placeholder."""
        reasons = []
        for hit in (ticket.classification or [])[:REASONS_SHOWN]:
            evidence = "; ".join(str(e) for e in list(hit.get("evidence", []))[:3])
            reason = f"{hit.get('name', '')}: {hit.get('description', '')}" + (f" [{evidence}]" if evidence else "")
            reasons.append(self._clean(reason, REASON_CHARS))
        target = self.sla.target_label(ticket.severity)
        due = ("scheduled for the next sprint" if self.sla.is_scheduled(ticket.severity)
               else f"first response within {target}")
        if ticket.first_response_at is not None:
            due = f"{ticket.status.replace('_', ' ')}, first response given"
        reporter = self._clean(ticket.reporter, 120)
        if ticket.reporter_name:
            reporter = f"{self._clean(ticket.reporter_name, 60)} <{reporter}>"
        return {"key": ticket.key, "severity": ticket.severity, "severity_label": severity_label(ticket.severity),
                "role": role_label(ticket.role),
                "subject": self._clean(ticket.subject or "(no subject)", SUBJECT_CHARS),
                "reporter": reporter, "at": ticket.created_at, "due": due, "response_due": ticket.response_due,
                "reasons": reasons or ["no rule fired (default severity and role)"],
                "uncertain": bool(ticket.uncertain), "address": self.tokens.unsigned_address(ticket.key)}

    def _clean(self, text: str, limit: int) -> str:
        """A stranger's text as one printable line of at most *limit* characters, never a credential."""
        line = self.tokens.neutralise(sanitize_header_text(str(text)[:limit * 4]))
        return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"

    def dashboard_url(self) -> str:
        if self.settings.dashboard_url:
            return self.settings.dashboard_url
        dashboard = self.config.dashboard
        return f"http://{dashboard.host}:{dashboard.port}/"
