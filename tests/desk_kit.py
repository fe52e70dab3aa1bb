"""Helpers for the SLA, escalation and reply-command tests: a team, a config, mail in and out.

Why a kit: every scenario needs the same four people, a Berlin business calendar, the
real relay for mail out and the real ingest path for mail in; spelling that out in each
test would hide what the test is about.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

from mailkit import Relay, make_mail
from sqlalchemy import select

from config import (
    Config,
    DatabaseSettings,
    HypercareSettings,
    IncidentSettings,
    SmtpOutSettings,
    SupportSettings,
    TeamMember,
)
from tickets.models import Event, OutboxItem, Ticket

ADA = TeamMember("Ada Admin", "ada@example.com", ("crm_admin",))
TIM = TeamMember("Tim Tech", "tim@example.com", ("technical_consultant",))
OLGA = TeamMember("Olga Oncall", "olga@example.com", ("business_analyst",), on_call=True)
PAM = TeamMember("Pam Manager", "pam@example.com", ("project_manager",))
TEAM = (ADA, TIM, OLGA, PAM)
REPORTER = "maria@customer.example"
SUPPORT = "support@example.com"

P1_MAIL = ("CRM is down", "Nobody can log in since 8:00, the whole sales team is blocked.")
P2_MAIL = ("Sync to ERP failing", "The integration with SAP fails since this morning, orders are not transferred.")
P3_MAIL = ("Typo on the account page", "There is a typo in the label of the account form.")


def desk_config(tmp_path: Path, *, relay: Relay | None = None, db_url: str | None = None,
                incidents: bool = True, **hypercare: Any) -> Config:
    """The four people on a Berlin calendar; ``incidents=False`` for tests that report one mail many times
    to test something else (else those reports are grouped into one incident, issue 14)."""
    settings = dict(timezone="Europe/Berlin", holidays="DE", go_live=date(2026, 11, 23))
    settings.update(hypercare)
    cfg = Config(base_dir=tmp_path, support=SupportSettings(address=SUPPORT),
                 hypercare=HypercareSettings(**settings), team=TEAM)
    if relay is not None:
        cfg = dataclasses.replace(cfg, smtp_out=SmtpOutSettings(host="127.0.0.1", port=relay.port, timeout=5))
    if db_url is not None:
        cfg = dataclasses.replace(cfg, database=DatabaseSettings(url=db_url))
    if not incidents:
        cfg = dataclasses.replace(cfg, incidents=IncidentSettings(enabled=False))
    return cfg


def report(app: Any, mail: tuple[str, str] = P2_MAIL, *, sender: str = REPORTER, message_id: str | None = None,
           **kwargs: Any) -> str:
    """The reporter writes to support; returns the new ticket's key."""
    result = app.pipeline.ingest(make_mail(subject=mail[0], body=mail[1], sender=sender, to=SUPPORT,
                                           message_id=message_id, **kwargs))
    assert result.action == "created", result
    return result.key


def team_reply(app: Any, key: str, body: str, *, sender: str = ADA.email, to: str | None = None,
               subject: str | None = None, name: str = "Team Member", quoted: bool = True) -> Any:
    """A team member answers a mail about *key*; by default to its signed Reply-To address."""
    if quoted:
        body = (f"{body}\n\nOn Mon, 23 Nov 2026 at 10:00, CRM Hypercare Support <{SUPPORT}> wrote:\n"
                f"> 50% of the first-response time of {key} has passed\n> Reporter: {REPORTER}\n")
    return app.pipeline.ingest(make_mail(subject=subject or f"Re: [{key}] escalation", body=body, sender=sender,
                                         to=to or signed_address(app, key, sender), name=name))


def signed_address(app: Any, key: str, member: str = ADA.email) -> str:
    """The Reply-To the desk signs for *member*'s mail about *key* now (as the outbox would send it)."""
    return str(app.tokens.reply_address(key, member, app.clock.now()))


def ticket(app: Any, key: str) -> Ticket:
    with app.store.read() as s:
        row = s.scalar(select(Ticket).where(Ticket.key == key))
        assert row is not None
        _ = row.events, row.messages, row.participants
        return row


def events(app: Any, key: str, kind: str | None = None) -> list[Event]:
    return [e for e in ticket(app, key).events if kind is None or e.kind == kind]


def outbox(app: Any, kind: str | None = None) -> list[OutboxItem]:
    with app.store.read() as s:
        query = select(OutboxItem).order_by(OutboxItem.id)
        if kind:
            query = query.where(OutboxItem.kind == kind)
        items = list(s.scalars(query))
        for item in items:
            _ = item.mime
        return items


def flush(app: Any) -> None:
    rep = app.outbox.flush(app.transport())
    assert rep.dead == 0 and rep.retried == 0, rep.errors


def by_subject(deliveries: list[Any]) -> list[tuple[str, list[str]]]:
    """(subject, sorted recipients) per mail sent: a team mail goes one copy per member (each signed for
    its reader), so consecutive deliveries with one subject are one mail."""
    out: list[tuple[str, list[str]]] = []
    for d in deliveries:
        subject = str(d.message["Subject"])
        if out and out[-1][0] == subject:
            out[-1] = (subject, sorted([*out[-1][1], *d.recipients]))
        else:
            out.append((subject, sorted(d.recipients)))
    return out


def text_of(delivery: Any) -> str:
    return delivery.message.get_body(("plain",)).get_content()


def html_of(delivery: Any) -> str:
    return delivery.message.get_body(("html",)).get_content()
