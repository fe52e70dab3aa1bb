"""What the dashboard shows, as plain data: the overview page and ``/api/summary`` use the same dict.

Why one builder: the page, the JSON and the static ``--out`` file must never disagree, and
everything here is a read (one ``Store.read()`` session, a handful of aggregate queries and
one scan of the open tickets), so the dashboard never takes SQLite's write lock.
Times stay ``datetime`` here; ``to_json`` turns them into ISO-8601 with offset.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import ROLES, SEVERITIES, Config
from notifier.digests import queries as q
from notifier.digests.criteria import ExitFacts
from notifier.digests.exit_pack import Period, burn_down
from notifier.digests.lines import day_bounds, local_midnight
from notifier.digests.outlook import exit_facts, judge_exit, judge_standing, sla_of
from tickets.bouncing import bouncing_people
from tickets.decisions import WORDS as DECISION_WORDS
from tickets.decisions import latest_decision
from tickets.feedback import feedback_summary
from tickets.health import mailbox_health, outbox_counts, relay_health
from tickets.incidents import incidents_in
from tickets.models import OPEN_STATUSES, Message, Ticket
from tickets.phases import day_number, exit_report_day, phase_on
from tickets.sla import SlaPolicy
from tickets.views import ticket_summary

AT_RISK = 0.80  # fraction of the response clock after which an open ticket is "about to breach"
TREND_DAYS = 14
INCIDENT_DAYS = 7  # incidents open at some time in the last week are listed


@dataclass(frozen=True)
class DashboardContext:
    """What the builder needs besides the session: passed in, never global."""

    config: Config
    sla: SlaPolicy
    go_live: date
    now: datetime


def build_summary(session: Session, ctx: DashboardContext) -> dict[str, Any]:
    tz = ctx.config.hypercare.tz
    today = ctx.now.astimezone(tz).date()
    open_rows = _open_tickets(session, ctx)
    sla = _sla_compliance(session, ctx, open_rows)
    trend = _trend(session, ctx, today)
    summary: dict[str, Any] = {
        "generated_at": ctx.now,
        "support": ctx.config.support.address,
        "phase": _phase(ctx.go_live, today),
        "open": _open_counts(open_rows),
        "sla": sla,
        "attention": [row for row in open_rows if row["sla_state"] in ("breached", "at_risk")],
        "open_tickets": open_rows,
        # Verdicts the classifier was unsure of and nobody has confirmed yet (#severity clears the mark).
        "uncertain": [row for row in open_rows if row["uncertain"]],
        "trend": trend,
        "workload": _workload(ctx.config, open_rows),
        "mailboxes": [m.to_dict() for m in mailbox_health(session, ctx.config, ctx.now)],
        "outbox": {**(outbox := outbox_counts(session, ctx.now)).to_dict(), "problems": outbox.problems(ctx.now)},
        "relays": [r.to_dict() for r in relay_health(session, ctx.config, ctx.now) if r.configured or not r.ok],
        "bouncing_people": [p.to_dict() for p in bouncing_people(session, ctx.config)],
        "feedback": feedback_summary(session).to_dict(),
        "incidents": incidents_in(session, ctx.now - timedelta(days=INCIDENT_DAYS), ctx.now),
    }
    facts = exit_facts(session, ctx.config.exit, ctx.now)
    summary["outlook"] = _outlook(ctx, facts, summary)
    summary["state"] = _state(session, ctx, facts, summary)
    period = Period(local_midnight(ctx.go_live, tz), ctx.now, tz)
    burn = burn_down(session, ctx.go_live, period, ctx.config.exit) if today >= ctx.go_live else []
    summary["burn"] = [{"date": p.day, "backlog": p.backlog, "scheduled": p.scheduled} for p in burn]
    summary["sla_trend"] = _sla_trend(session, ctx, today)
    return summary


def to_json(value: Any) -> Any:
    """Datetimes to ISO-8601 strings, recursively (the JSON endpoints)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


# --- sections ---------------------------------------------------------------------------------


def _phase(go_live: date, today: date) -> dict[str, Any]:
    phase = phase_on(go_live, today)
    return {"key": phase.key, "week": phase.week, "day": day_number(go_live, today), "title": phase.title,
            "asks": phase.asks, "cadence": phase.cadence, "go_live": go_live}


def _open_tickets(session: Session, ctx: DashboardContext) -> list[dict[str, Any]]:
    """Every open ticket with its SLA state, breached and about-to-breach first."""
    counts = select(Message.ticket_id, func.count(Message.id).label("n")).group_by(Message.ticket_id).subquery()
    query = (select(Ticket, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.ticket_id == Ticket.id)
             .where(Ticket.status.in_(OPEN_STATUSES)))
    rows = []
    for ticket, n in session.execute(query):
        row = ticket_summary(ticket, n)
        state, fraction = _sla_state(ctx, ticket)
        row["sla_state"], row["sla_fraction"] = state, fraction
        row["due"] = ticket.response_due
        row["seconds_left"] = ((ticket.response_due - ctx.now).total_seconds()
                               if ticket.response_due is not None else None)
        rows.append(row)
    order = {"breached": 0, "at_risk": 1, "running": 2, "scheduled": 3, "paused": 4, "answered": 5}
    far = datetime.max.replace(tzinfo=ctx.now.tzinfo)
    rows.sort(key=lambda r: (order[r["sla_state"]], r["severity"], r["due"] or far, r["key"]))
    return rows


def _sla_state(ctx: DashboardContext, ticket: Ticket) -> tuple[str, float | None]:
    if ticket.first_response_at is not None:
        return "answered", None
    if ticket.response_due is None:
        return "running", None
    if ticket.status == "waiting_on_customer" or ticket.paused_at is not None:
        return "paused", None
    if ctx.sla.is_scheduled(ticket.severity):
        return "scheduled", None  # a P4 waits for its sprint: scheduled, never "breached" (issue 14)
    fraction = ctx.sla.fraction_elapsed(ticket.severity, ticket.created_at, ticket.response_due, ctx.now)
    if fraction >= 1.0:
        return "breached", fraction
    return ("at_risk" if fraction >= AT_RISK else "running"), fraction


def _open_counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    matrix = {sev: {status: 0 for status in OPEN_STATUSES} for sev in SEVERITIES}
    for row in rows:
        matrix.setdefault(row["severity"], {s: 0 for s in OPEN_STATUSES})[row["status"]] += 1
    return {
        "total": len(rows),
        "statuses": list(OPEN_STATUSES),
        "by_severity": {sev: sum(cells.values()) for sev, cells in matrix.items()},
        "by_status": {status: sum(m[status] for m in matrix.values()) for status in OPEN_STATUSES},
        "matrix": matrix,
    }


def _sla_compliance(session: Session, ctx: DashboardContext, open_rows: list[dict[str, Any]]) -> list[dict]:
    """Per severity: first responses on time vs late; open tickets already overdue count as late."""
    answered = dict.fromkeys(SEVERITIES, (0, 0))
    query = (select(Ticket.severity, Ticket.response_met, func.count(Ticket.id))
             .where(Ticket.response_met.is_not(None)).group_by(Ticket.severity, Ticket.response_met))
    for severity, met, n in session.execute(query):
        on_time, late = answered.get(severity, (0, 0))
        answered[severity] = (on_time + n, late) if met else (on_time, late + n)
    overdue = Counter(r["severity"] for r in open_rows if r["sla_state"] == "breached")
    result = []
    for severity in SEVERITIES:
        on_time, late = answered.get(severity, (0, 0))
        late += overdue.get(severity, 0)
        measured = on_time + late
        compliance = on_time / measured if measured else None
        result.append({
            "severity": severity, "target": ctx.sla.target_label(severity), "goal": ctx.config.exit.sla_target,
            "met": on_time, "breached": late, "measured": measured, "compliance": compliance,
            "on_target": compliance is None or compliance >= ctx.config.exit.sla_target,
        })
    return result


def _trend(session: Session, ctx: DashboardContext, today: date) -> list[dict[str, Any]]:
    """Opened vs resolved per local day, the last TREND_DAYS days (bucketed here: tz-correct on any backend)."""
    tz = ctx.config.hypercare.tz
    first = max(today - timedelta(days=TREND_DAYS - 1), min(ctx.go_live, today))  # charts start at go-live
    since = datetime.combine(first, datetime.min.time(), tzinfo=tz)
    opened = Counter(t.astimezone(tz).date() for t in session.scalars(
        select(Ticket.created_at).where(Ticket.created_at >= since)))
    resolved = Counter(t.astimezone(tz).date() for t in session.scalars(
        select(Ticket.resolved_at).where(Ticket.resolved_at.is_not(None), Ticket.resolved_at >= since)))
    days = [first + timedelta(days=i) for i in range((today - first).days + 1)]
    return [{"date": d, "opened": opened.get(d, 0), "resolved": resolved.get(d, 0)} for d in days]


def _sla_trend(session: Session, ctx: DashboardContext, today: date) -> list[dict[str, Any]]:
    """First responses given per local day since go-live (at most TREND_DAYS): met of answered."""
    tz = ctx.config.hypercare.tz
    if today < ctx.go_live:
        return []
    first = max(today - timedelta(days=TREND_DAYS - 1), ctx.go_live)
    dates, bounds = day_bounds(first, (today - first).days + 1, tz)
    rows = q.daily_responses(session, bounds)
    return [{"date": d, "met": met, "answered": answered, "share": met / answered if answered else None}
            for d, (met, answered) in zip(dates, rows, strict=True)]


def _workload(config: Config, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = []
    for role in ROLES:
        mine = [r for r in rows if r["role"] == role]
        result.append({
            "role": role, "open": len(mine),
            "breached": sum(1 for r in mine if r["sla_state"] == "breached"),
            "at_risk": sum(1 for r in mine if r["sla_state"] == "at_risk"),
            "p1_p2": sum(1 for r in mine if r["severity"] in ("P1", "P2")),
            "members": [m.name for m in config.team if role in m.roles],
        })
    return result


def _outlook(ctx: DashboardContext, facts: ExitFacts, summary: dict[str, Any]) -> dict[str, Any]:
    """The go/no-go outlook: the same ``[exit]`` criteria and figures as the exit report (judge_exit).

    ``shown`` is False in week 1 (and before go-live): a newcomer on day 0 must not be greeted by
    an exit verdict about a period that has barely begun; the page shows on track / at risk instead.
    """
    verdict = judge_exit(facts, ctx.config.exit)
    on_time = sum(s["met"] for s in summary["sla"])
    measured = sum(s["measured"] for s in summary["sla"])
    return {
        "decision": "go" if verdict.go else "no-go",
        "shown": summary["phase"]["week"] >= 2,
        "criteria": [{"name": c.description, "ok": c.passed, "detail": c.figure, "state": c.state,
                      "blocking": c.blocking} for c in verdict.criteria],
        "blockers": [c.description for c in verdict.blockers],
        "sla_compliance": on_time / measured if measured else None,
    }


def _state(session: Session, ctx: DashboardContext, facts: ExitFacts, summary: dict[str, Any]) -> dict[str, Any]:
    """The top of the page: how is the go-live going, in the digests' words and figures."""
    settings = ctx.config.exit
    standing = judge_standing(facts, settings, summary["phase"]["week"])
    sla = sla_of(facts, settings)
    decision = latest_decision(session)
    trend = ("falling" if facts.backlog_now < facts.backlog_before else
             "rising" if facts.backlog_now > facts.backlog_before else "flat")
    return {
        "standing": standing.state, "word": standing.word, "reason": standing.reason,
        "open_blocking": facts.open_blocking, "overdue_blocking": facts.overdue_blocking,
        "exit_day": exit_report_day(ctx.go_live, ctx.sla.calendar.is_business_day, ctx.config.hypercare.exit_date),
        "blocking_names": "/".join(settings.blocking_severities),
        "sla": {"text": sla.text, "percent": sla.percent, "met": sla.met, "measured": sla.measured,
                "small": sla.small, "below": sla.below, "window_days": settings.sla_window_days,
                "min_sample": settings.sla_min_sample},
        "backlog": {"before": facts.backlog_before, "now": facts.backlog_now, "trend": trend,
                    "window_days": settings.backlog_window_days, "scheduled": facts.scheduled_open},
        "decision": None if decision is None else {
            "decision": decision.decision, "word": DECISION_WORDS[decision.decision], "text": decision.text,
            "by": decision.actor_name or decision.actor, "at": decision.at, "via": decision.via},
    }
