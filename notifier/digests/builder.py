"""Assemble, render and queue the three digests: daily status, weekly summary, exit report.

Why one builder for three digests: they share the figures (open tallies, SLA rows,
the trend chart, the exit verdict that the weekly summary shows as its outlook), the
recipients rule and the mail headers (``Auto-Submitted: auto-generated``).  The CLI
(``hypercare digest``) and the scheduler call the same ``render()``, so what a
stakeholder receives is exactly what ``hypercare digest daily`` prints.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Config
from core.errors import UserError
from notifier.digests import queries as q
from notifier.digests.criteria import ExitSettings
from notifier.digests.exit_pack import exit_pack
from notifier.digests.lines import (
    SlaLine,
    day_bars,
    day_bounds,
    duration,
    local_midnight,
    percent,
    sla_lines,
    ticket_lines,
)
from notifier.digests.outlook import Verdict, exit_facts, judge_exit, judge_standing, sla_of
from notifier.labels import role_label, severity_label
from notifier.mime import OutgoingMail
from notifier.render import Rendered, Renderer
from tickets.bouncing import bouncing_people
from tickets.decisions import DECIDER_ROLE
from tickets.decisions import WORDS as DECISION_WORDS
from tickets.feedback import feedback_summary
from tickets.incidents import incidents_in
from tickets.models import ScheduleRun
from tickets.phases import exit_report_day, phase_on, weeks_label
from tickets.sla import SlaPolicy
from tickets.store import Store
from tickets.tokens import ReplyTokens, unsigned_address
from tickets.topics import top_terms

# CLI name -> template key (= scheduler job name, outbox kind)
KINDS = {"daily": "status_daily", "weekly": "weekly_summary", "exit": "exit_report"}
DIGEST_TEMPLATES = tuple(KINDS.values())
LIST_LIMIT = 50  # ticket lines per list; the rest is "and N more"
OLDEST_LIMIT = 10


class DigestProblem(UserError):
    """A digest cannot be produced as asked (no recipients configured, unknown kind); one line."""


class DigestBuilder:
    def __init__(self, config: Config, store: Store, sla: SlaPolicy, renderer: Renderer, go_live: date,
                 exit_settings: ExitSettings | None = None, exit_day: date | None = None) -> None:
        self.config = config
        self.store = store
        self.sla = sla
        self.renderer = renderer
        self.go_live = go_live
        self.exit = exit_settings or ExitSettings()
        self.tz = config.hypercare.tz
        self.exit_day = exit_day or exit_report_day(go_live, override=config.hypercare.exit_date)

    # --- public --------------------------------------------------------------------------------

    def render(self, key: str, now: datetime, since: datetime | None = None) -> Rendered:
        """Render digest *key* (``status_daily`` | ``weekly_summary`` | ``exit_report``) as of *now*."""
        with self.store.read() as session:
            context = self.context(session, key, now, since)
        return self.renderer.render(key, **context)

    def context(self, session: Session, key: str, now: datetime, since: datetime | None = None) -> dict[str, Any]:
        if key == "status_daily":
            return self._daily(session, now, since or self.last_status_at(session, now))
        if key == "weekly_summary":
            return self._weekly(session, now)
        if key == "exit_report":
            return self._exit(session, now)
        raise DigestProblem(f"unknown digest {key!r}; use one of {', '.join(KINDS)}")

    def recipients(self, key: str) -> tuple[str, ...]:
        daily, weekly = self.config.stakeholders.daily, self.config.stakeholders.weekly
        if key == "status_daily":
            return daily
        if key == "weekly_summary":
            return weekly
        # The exit report: everyone, once each; the project managers decide, so they get it too.
        return tuple(dict.fromkeys(a.lower() for a in (*daily, *weekly, *self.decision_makers())))

    @staticmethod
    def no_recipients(key: str) -> DigestProblem:
        which = "daily" if key == "status_daily" else "weekly" if key == "weekly_summary" else "daily or weekly"
        return DigestProblem(f"no recipients for {key}: set [stakeholders] {which} in the config")

    def decision_makers(self) -> tuple[str, ...]:
        """The ``[[team]]`` project managers: each gets the exit report alone, with a reply address
        signed for them, so their ``#decision`` reply is a credential (``replies.stakeholder_reply``)."""
        return tuple(dict.fromkeys(m.email.lower() for m in self.config.team if DECIDER_ROLE in m.roles))

    def mail(self, key: str, rendered: Rendered, to: tuple[str, ...] | None = None,
             reply_to: str | None = None) -> OutgoingMail:
        to = self.recipients(key) if to is None else to
        if not to:
            raise self.no_recipients(key)
        return OutgoingMail(kind=key, to=list(to), subject=rendered.subject, text=rendered.text,
                            html=rendered.html, auto_submitted="auto-generated", reply_to=reply_to,
                            extra_headers={"Precedence": "bulk"})

    def mails(self, key: str, now: datetime, since: datetime | None = None,
              rendered: Rendered | None = None) -> list[tuple[str, OutgoingMail]]:
        """Every mail of digest *key* as (idempotency suffix, mail): one to the stakeholders; for the exit
        report also one per project manager ("pm:<hash>") whose Reply-To is the exit report's signed
        address (a placeholder here, signed for its one recipient when sent, like team mail)."""
        if not self.recipients(key):
            raise self.no_recipients(key)
        with self.store.read() as session:
            context = self.context(session, key, now, since)
        rendered = rendered or self.renderer.render(key, **context)
        if key != "exit_report":
            return [("", self.mail(key, rendered))]
        managers = self.decision_makers()
        others = tuple(a for a in self.recipients(key) if a not in managers)
        result = [("", self.mail(key, rendered, others))] if others else []
        if managers:
            own = self.renderer.render(key, **context, decision_reply=True)
            reply_to = unsigned_address(self.config.support, ReplyTokens.exit_key(self.exit_day))
            for manager in managers:
                suffix = "pm:" + hashlib.sha256(manager.encode()).hexdigest()[:16]
                result.append((suffix, self.mail(key, own, (manager,), reply_to)))
        return result

    def last_status_at(self, session: Session, now: datetime) -> datetime:
        """When the previous status email went out (its window ends there), else go-live midnight."""
        last = session.scalar(select(ScheduleRun.ran_at).where(
            ScheduleRun.job == "status_daily", ScheduleRun.ran_at < now).order_by(ScheduleRun.ran_at.desc()).limit(1))
        return last or local_midnight(self.go_live, self.tz)

    # --- the three digests -----------------------------------------------------------------------

    def _base(self, session: Session, now: datetime, judged_at: datetime | None = None,
              sla_since: datetime | None = None, tallies: dict[str, q.SlaTally] | None = None) -> dict[str, Any]:
        """What every digest shows first: the phase, and the one-line verdict with its reason
        (judged for the week the digest covers: a weekly summary of week 1 is judged as week 1)."""
        local = now.astimezone(self.tz)
        phase = phase_on(self.go_live, local.date())
        judged_week = phase_on(self.go_live, (judged_at - timedelta(seconds=1)).astimezone(self.tz).date()).week \
            if judged_at is not None else phase.week
        facts = exit_facts(session, self.exit, judged_at or now, sla_since=sla_since, tallies=tallies)
        return {"now": local, "today": local.date(), "phase": phase,
                "day_number": (local.date() - self.go_live).days, "go_live": self.go_live,
                "support": self.config.support, "tz": self.tz, "facts": facts,
                "standing": judge_standing(facts, self.exit, judged_week), "verdict": judge_exit(facts, self.exit),
                "sla_figure": sla_of(facts, self.exit), "sla_window": f"last {self.exit.sla_window_days} days",
                "exit_day": self.exit_day, "blocking_names": "/".join(self.exit.blocking_severities)}

    def _trend(self, session: Session, now: datetime, days: int) -> list[Any]:
        today = now.astimezone(self.tz).date()
        first = max(today - timedelta(days=days - 1), min(self.go_live, today))  # charts start at go-live
        dates, bounds = day_bounds(first, (today - first).days + 1, self.tz)
        return day_bars(dates, q.daily_trend(session, bounds))

    def _sla_rows(self, tallies: dict[str, q.SlaTally]) -> list[SlaLine]:
        return sla_lines(tallies, self.sla, self.exit.sla_target)

    def _daily(self, session: Session, now: datetime, since: datetime) -> dict[str, Any]:
        # The per-severity table covers exactly the headline's window, so the two always add up.
        tallies = q.sla_tallies(session, now - timedelta(days=self.exit.sla_window_days), now, now)
        base = self._base(session, now, tallies=tallies)
        blocking_total, blocking = q.open_rows(session, severities=self.exit.blocking_severities, limit=LIST_LIMIT)
        _, oldest = q.open_rows(session, limit=OLDEST_LIMIT)
        sla = self._sla_rows(tallies)
        open_tally, new, resolved = q.window_tallies(session, since, now)
        return {
            **base,
            "since": since.astimezone(self.tz),
            "new": new,
            "resolved": resolved,
            "open": open_tally,
            "blocking": ticket_lines(blocking, self.sla, now),
            "blocking_more": blocking_total - len(blocking),
            "sla": sla,
            "oldest": ticket_lines(oldest, self.sla, now),
            "trend": self._trend(session, now, 7),
            "severity_rows": _rows(open_tally.by_severity, severity_label),
            "role_rows": _rows(open_tally.by_role, role_label),
            "bouncing_people": [p.line() for p in bouncing_people(session, self.config)],
            "incidents": self._incidents(session, since, now),
        }

    def _incidents(self, session: Session, since: datetime, until: datetime) -> list[str]:
        """ "SSO outage, 8 reports, 08:12-10:05, resolved": each incident open at some time in the window."""
        lines = []
        for row in incidents_in(session, since, until):
            first, last = row["first"].astimezone(self.tz), row["last"].astimezone(self.tz)
            span = f"{first:%H:%M}-{last:%H:%M}" if first.date() == last.date() else \
                f"{first:%d %b %H:%M}-{last:%d %b %H:%M}"
            lines.append(f"{row['key']} {row['title']}, {row['reports']} report{'s' if row['reports'] != 1 else ''}, "
                         f"{span}, {row['status']}")
        return lines

    def _weekly(self, session: Session, now: datetime) -> dict[str, Any]:
        # The seven whole local days before the send day: on a Monday, last Monday to Sunday night.
        today = now.astimezone(self.tz).date()
        dates, bounds = day_bounds(today - timedelta(days=7), 7, self.tz)
        start, end = bounds[0], bounds[-1]
        # Judged at the end of the week it covers, the SLA over exactly that week: one figure everywhere.
        tallies = q.sla_tallies(session, start, end, now)
        base = self._base(session, now, judged_at=min(end, now), sla_since=start, tallies=tallies)
        trend = day_bars(dates, q.daily_trend(session, bounds))
        count, mean, p90 = q.first_response_stats(session, start, end)
        reopened_total, reopened = q.reopened(session, start, end)
        feedback = feedback_summary(session, start, end, low_limit=5)  # the dashboard's figures, this week
        return {
            **base,
            "covered": weeks_label(self.go_live, dates[0], dates[-1]),
            "covered_phase": phase_on(self.go_live, dates[-1]),
            "start": start.astimezone(self.tz),
            "end": (end - timedelta(seconds=1)).astimezone(self.tz),
            "trend": trend,
            "opened_total": sum(b.opened for b in trend),
            "resolved_total": sum(b.resolved for b in trend),
            "sla": self._sla_rows(tallies),
            "sla_window": "this week",
            "sla_goal": percent(self.exit.sla_target),
            "responses": count,
            "response_mean": duration(mean) if mean is not None else "n/a",
            "response_p90": duration(p90) if p90 is not None else "n/a",
            "topics": top_terms(q.subjects(session, start, end)),
            "incidents": self._incidents(session, start, end),
            "reopened_total": reopened_total,
            "reopened": reopened,
            "rated": feedback.count,
            "rating": f"{feedback.average:.1f}" if feedback.average is not None else "n/a",
            "low_ratings": feedback.low,
            "open": q.open_tally(session),
        }

    def _exit(self, session: Session, now: datetime) -> dict[str, Any]:
        pack = exit_pack(session, go_live=self.go_live, tz=self.tz, sla=self.sla, settings=self.exit, now=now)
        decision = pack["decision"]
        word = DECISION_WORDS[decision.decision] if decision else ""
        return {**self._base(session, now), **pack, "decision_word": word}

    def verdict(self, session: Session, now: datetime) -> Verdict:
        return judge_exit(exit_facts(session, self.exit, now), self.exit)


def _rows(counts: dict[str, int], label: Any) -> list[tuple[str, int]]:
    return [(label(code), n) for code, n in counts.items()]
