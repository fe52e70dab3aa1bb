"""Turn the summary and one ticket into HTML through the shared renderer (autoescaped templates).

Why here and not in the templates: local times, "2 h 10 min left" and the chart's bar geometry
are computed once in Python, so the templates only place values (and escape them).
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from config import ROLES, SEVERITIES
from dashboard.public_status import public_status
from dashboard.summary import AT_RISK, DashboardContext, build_summary
from notifier.labels import role_label, severity_label, status_label
from notifier.render import Renderer
from tickets.models import STATUSES, Escalation, Feedback, Message, Ticket
from tickets.search import SEARCH_LIMIT, TicketFilter, search_tickets
from tickets.views import ticket_detail, triage_lines

# No script may run at all: even if escaping failed somewhere, an injected <script> stays inert.
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # 'self': the search form
# The same policy as a <meta> tag for the static page (``dashboard --out``); a meta tag cannot carry
# frame-ancestors (browsers ignore it there), everything else is the same.
CSP_META = "; ".join(d for d in CONTENT_SECURITY_POLICY.split("; ") if not d.startswith("frame-ancestors"))
REFRESH_SECONDS = 60
CHART_HEIGHT = 120
BAR_WIDTH = 14


def overview_html(session: Session, ctx: DashboardContext, renderer: Renderer, *, static: bool = False,
                  summary: dict[str, Any] | None = None, wanted: TicketFilter | None = None) -> str:
    summary = summary if summary is not None else build_summary(session, ctx)
    wanted = wanted or TicketFilter()
    found = search_tickets(session, wanted) if wanted.active else None
    tz = ctx.config.hypercare.tz
    return renderer.render_page(
        "dashboard.html.j2", s=summary, chart=_chart(summary["trend"]), burn=_burn_chart(summary["burn"]),
        sla_chart=_sla_chart(summary["sla_trend"], ctx.config.exit.sla_target), tz=tz, static=static,
        wanted=wanted.to_dict(), found=found, search_limit=SEARCH_LIMIT, statuses=(*STATUSES, "open"),
        severities=SEVERITIES, roles=ROLES,
        incident_keys=list(dict.fromkeys([*(i["key"] for i in summary["incidents"]),
                                          *([wanted.incident] if wanted.incident else [])])),
        refresh=None if static else REFRESH_SECONDS, local=lambda v: local(v, tz), left=time_left,
        csp_meta=CSP_META if static else None,
        severity_label=severity_label, role_label=role_label, status_label=status_label, at_risk=AT_RISK,
        title=f"Hypercare dashboard — {ctx.config.support.name}")


def status_html(session: Session, ctx: DashboardContext, renderer: Renderer, *, days: int | None = None,
                static: bool = False, data: dict[str, Any] | None = None) -> str:
    """The public status page (``/status``, ``dashboard --status-page``): see ``dashboard.public_status``."""
    tz = ctx.config.hypercare.tz
    if data is None:
        data = public_status(session, ctx.config, ctx.now, days or ctx.config.dashboard.status_days)
    return renderer.render_page(
        "status_page.html.j2", p=data, tz=tz, static=static, refresh=None if static else REFRESH_SECONDS,
        local=lambda v: local(v, tz), csp_meta=CSP_META if static else None,
        title=f"Service status — {data['support_name']}")


def load_ticket(session: Session, key: str) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.key == key.upper()).options(
        selectinload(Ticket.messages).selectinload(Message.attachments),
        selectinload(Ticket.events), selectinload(Ticket.participants)))


def ticket_html(session: Session, ctx: DashboardContext, renderer: Renderer, ticket: Ticket) -> str:
    tz = ctx.config.hypercare.tz
    data = ticket_detail(ticket)
    feedback = session.scalar(select(Feedback).where(Feedback.ticket_id == ticket.id))
    return renderer.render_page(
        "dashboard_ticket.html.j2", t=data, timeline=sla_timeline(session, ctx, ticket), feedback=feedback,
        triage=triage_lines(ticket.triage),
        tz=tz, refresh=REFRESH_SECONDS, static=False, local=lambda v: local(v, tz),
        severity_label=severity_label, role_label=role_label, status_label=status_label,
        title=f"{ticket.key} — {ctx.config.support.name}")


def sla_timeline(session: Session, ctx: DashboardContext, ticket: Ticket) -> list[dict[str, Any]]:
    """The ticket's clock as ordered points: opened, escalation levels, due, first response, resolved."""
    points: list[dict[str, Any]] = [{"at": ticket.created_at, "what": "opened", "state": "done"}]
    for esc in session.scalars(select(Escalation).where(Escalation.ticket_id == ticket.id).order_by(Escalation.at)):
        label = "escalated (new P1)" if esc.level == "p1-new" else f"escalated at {float(esc.level):.0%}"
        points.append({"at": esc.at, "what": label, "state": "done",
                       "detail": ", ".join(esc.recipients or [])})
    if ticket.response_due is not None:
        if ticket.first_response_at is None and ticket.is_open:
            state = "late" if ctx.now >= ticket.response_due else "pending"
        else:
            state = "done"
        target = ctx.sla.target_label(ticket.severity)
        points.append({"at": ticket.response_due, "what": f"first response due ({target})", "state": state})
    if ticket.first_response_at is not None:
        points.append({"at": ticket.first_response_at, "what": "first response",
                       "state": "done" if ticket.response_met else "late",
                       "detail": "met" if ticket.response_met else "breached"})
    if ticket.paused_at is not None:
        points.append({"at": ticket.paused_at, "what": "clock paused (waiting on the reporter)", "state": "done"})
    if ticket.resolution_due is not None:
        late = ticket.resolved_at is None and ctx.now >= ticket.resolution_due
        points.append({"at": ticket.resolution_due, "what": "resolution due",
                       "state": "late" if late else ("done" if ticket.resolved_at else "pending")})
    if ticket.resolved_at is not None:
        points.append({"at": ticket.resolved_at, "what": "resolved", "state": "done"})
    points.sort(key=lambda p: p["at"])
    return points


def local(value: Any, tz: tzinfo, fmt: str = "%a %d %b %H:%M") -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return value.strftime("%a %d %b")
    return value.astimezone(tz).strftime(fmt)


def time_left(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    text = f"{days} d {hours} h" if days else (f"{hours} h {mins} min" if hours else f"{mins} min")
    return f"{text} left" if seconds >= 0 else f"overdue {text}"


def _chart(trend: list[dict[str, Any]]) -> dict[str, Any]:
    """Bar geometry for the inline SVG: two bars per day (opened, resolved), scaled to the busiest day."""
    top = max([1, *(d["opened"] for d in trend), *(d["resolved"] for d in trend)])
    step = 2 * BAR_WIDTH + 12
    bars = []
    for i, day in enumerate(trend):
        x = 30 + i * step
        for j, kind in enumerate(("opened", "resolved")):
            h = round(day[kind] / top * CHART_HEIGHT)
            bars.append({"x": x + j * BAR_WIDTH, "y": 10 + CHART_HEIGHT - h, "h": h, "w": BAR_WIDTH - 2,
                         "kind": kind, "n": day[kind], "date": day["date"]})
    labels = [{"x": 30 + i * step + BAR_WIDTH, "text": d["date"].strftime("%d.%m")} for i, d in enumerate(trend)]
    return {"bars": bars, "labels": labels, "width": 40 + len(trend) * step, "height": CHART_HEIGHT + 40,
            "top": top, "base": 10 + CHART_HEIGHT}


def _burn_chart(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacked columns per day since go-live: open backlog (dark) and scheduled P4 (light) on top."""
    top = max([1, *(p["backlog"] + p["scheduled"] for p in points)])
    step = BAR_WIDTH + 6
    columns = []
    for i, p in enumerate(points):
        h_backlog = round(p["backlog"] / top * CHART_HEIGHT)
        h_scheduled = round(p["scheduled"] / top * CHART_HEIGHT)
        base = 10 + CHART_HEIGHT
        columns.append({"x": 30 + i * step, "w": BAR_WIDTH, "date": p["date"], "backlog": p["backlog"],
                        "scheduled": p["scheduled"], "y_backlog": base - h_backlog, "h_backlog": h_backlog,
                        "y_scheduled": base - h_backlog - h_scheduled, "h_scheduled": h_scheduled})
    return {"columns": columns, "labels": _labels(points, 30 + BAR_WIDTH // 2, step),
            "width": 40 + len(points) * step, "height": CHART_HEIGHT + 40, "top": top, "base": 10 + CHART_HEIGHT}


def _sla_chart(points: list[dict[str, Any]], goal: float) -> dict[str, Any]:
    """One bar per day: the share of first responses given that day within SLA, with the goal line."""
    step = BAR_WIDTH + 6
    bars = []
    for i, p in enumerate(points):
        h = round((p["share"] or 0) * CHART_HEIGHT)
        bars.append({"x": 30 + i * step, "w": BAR_WIDTH, "y": 10 + CHART_HEIGHT - h, "h": h, "date": p["date"],
                     "met": p["met"], "answered": p["answered"], "share": p["share"]})
    return {"bars": bars, "labels": _labels(points, 30 + BAR_WIDTH // 2, step), "width": 40 + len(points) * step,
            "height": CHART_HEIGHT + 40, "base": 10 + CHART_HEIGHT, "goal": goal,
            "goal_y": 10 + CHART_HEIGHT - round(goal * CHART_HEIGHT)}


def _labels(points: list[dict[str, Any]], first_x: int, step: int) -> list[dict[str, Any]]:
    """A date under the first column and every seventh one: readable at any width."""
    return [{"x": first_x + i * step, "text": p["date"].strftime("%d.%m")}
            for i, p in enumerate(points) if i % 7 == 0 or i == len(points) - 1]
