"""A four-week hypercare rehearsal on the frozen clock: how many mails does each team member get?

Why a script (issue 14): the team's inbox is the desk's real cost.  The rehearsal of issue 14 (a team
of four, three stakeholders, about 40 new mails and 75 replies in English, German and French) gave the
on-call member 76 mails.  This replays a comparable go-live with the clock moved as ``--now`` moves
it (every beat of ``run``/``tick``: the SLA sweeps and the digests, every 30 minutes of rehearsed
time) and prints the mails queued for each person.  It uses only what every version of the desk has
(``#ack``, answers, ``#resolve``), so the same script measures the desk before and after a change:

    .venv/bin/python bench/rehearsal.py            # prints one line per person and the total
    .venv/bin/python bench/rehearsal.py --triage digest   # P3/P4 triage notices batched (09:00, 14:00)

The scripted team acts like the real one: the owner of each ticket (its assignee, else the first
member holding its role) acknowledges it 40 minutes after it arrives (10 minutes for a P1), answers
and resolves it the next business morning; a third of the reporters thank them afterwards; the CIO
answers the first status email.  Where the desk groups reports into an incident, the team acts on
the incident's first report only (as a person would: the later reports are answered with it).
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from app import App
from config import (
    Config,
    DatabaseSettings,
    HypercareSettings,
    StakeholderSettings,
    SupportSettings,
    TeamMember,
)
from tickets.clock import FrozenClock
from tickets.models import OutboxItem, Ticket

BERLIN = ZoneInfo("Europe/Berlin")
GO_LIVE = date(2026, 11, 23)
SUPPORT = "support@example.com"
TEAM = (
    TeamMember("Ada Admin", "ada@example.com", ("crm_admin",)),
    TeamMember("Tim Tech", "tim@example.com", ("technical_consultant",)),
    TeamMember("Olga Oncall", "olga@example.com", ("business_analyst",), on_call=True),
    TeamMember("Pam Manager", "pam@example.com", ("project_manager",)),
)
STAKEHOLDERS = StakeholderSettings(daily=("cio@customer.example", "keyuser@customer.example"),
                                   weekly=("sponsor@customer.example",))
THANKS = {"en": "Thanks, works again!", "de": "Danke, geht wieder!", "fr": "Merci, ça marche de nouveau."}

# (language, subject, body): the everyday requests of a go-live, reported on business days at 10:00 and 14:00.
REQUESTS = [
    ("en", "Sync to ERP failing", "The integration with SAP fails since this morning, orders are not transferred."),
    ("de", "Tippfehler in der Kontaktmaske", "Im Feld Anrede steht 'Her' statt 'Herr'. Kleiner Schönheitsfehler."),
    ("fr", "Demande d'amélioration : export Excel", "Ce serait bien d'avoir un bouton d'export Excel sur la liste."),
    ("en", "Typo on the account page", "There is a typo in the label of the account form."),
    ("de", "Angebot kann nicht freigegeben werden", "Der Freigabe-Workflow für Angebote hängt, wir sind blockiert."),
    ("fr", "Question sur le processus de relance", "Comment planifier une relance automatique pour un devis ?"),
    ("en", "Feature request: dashboard filter", "It would be nice to filter the sales dashboard by region."),
    ("de", "Bericht zeigt falsche Summen", "Der Umsatzbericht zeigt für November falsche Summen an."),
    ("fr", "Faute de frappe dans le modèle d'e-mail", "Le modèle d'e-mail de bienvenue contient une faute."),
    ("en", "Cannot convert lead", "Converting a lead to an opportunity fails with an error for our team."),
]
STORM = [
    ("en", "CRM is down", "Nobody can log in since 8:00, the whole sales team is blocked."),
    ("de", "CRM ausgefallen", "Das CRM ist seit 8 Uhr komplett ausgefallen, wir bekommen nur eine Fehlerseite."),
    ("fr", "CRM en panne", "Le CRM est en panne depuis ce matin, personne ne peut se connecter au CRM."),
    ("en", "CRM down?", "Is the CRM down? I get an error 503 when I open it."),
    ("de", "Kein Zugriff auf das CRM", "Das CRM ist nicht erreichbar, Fehler 503 bei allen Kollegen im Vertrieb."),
    ("fr", "Le CRM ne répond plus", "Le CRM est en panne pour toute l'équipe, erreur 503 à l'ouverture."),
    ("en", "Outage: CRM not loading", "The CRM is down for our whole team, the page does not load at all."),
    ("de", "CRM Ausfall", "Das CRM ist komplett ausgefallen, niemand im Team kann arbeiten."),
]


def berlin(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def mail(subject: str, body: str, sender: str, *, to: str = SUPPORT, in_reply_to: str | None = None,
         name: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>" if name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@rehearsal.example>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(body)
    return msg.as_bytes()


class Rehearsal:
    def __init__(self, workdir: Path, triage: str = "immediate", per_day: int = 2) -> None:
        # New requests per business day: 2 (10:00, 14:00) is the rehearsal of issue 14; more spreads them
        # over the business day, to see where batching the P3/P4 notices starts to pay.
        self.hours = (10, 14) if per_day == 2 else tuple(9 + (8 * i) // per_day for i in range(per_day))
        self.minutes = (0,) if per_day == 2 else tuple((480 * i // per_day) % 60 for i in range(per_day))
        config = Config(base_dir=workdir, support=SupportSettings(address=SUPPORT),
                        hypercare=HypercareSettings(timezone="Europe/Berlin", holidays="DE", go_live=GO_LIVE),
                        database=DatabaseSettings(url=f"sqlite:///{workdir}/rehearsal.db"), team=TEAM,
                        stakeholders=STAKEHOLDERS)
        if triage != "immediate":  # [triage] low_severity (issue 14); a desk before it has no such section
            from config import TriageSettings

            config = dataclasses.replace(config, triage=TriageSettings(low_severity=triage))
        self.clock = FrozenClock(berlin(GO_LIVE, 8))
        self.app = App(config, self.clock)
        self.actions: list[tuple[datetime, int, Callable[[], None]]] = []
        self.seq = 0
        self.counts = Counter[str]()
        self.new_mails = self.replies = 0

    # --- the timeline --------------------------------------------------------------------------

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        self.seq += 1
        heapq.heappush(self.actions, (when, self.seq, action))

    def run(self) -> dict[str, Any]:
        day, n = GO_LIVE, 0
        while day < GO_LIVE + timedelta(days=28):
            if self.app.calendar.is_business_day(day):
                for i, hour in enumerate(self.hours):
                    lang, subject, body = REQUESTS[n % len(REQUESTS)]
                    when = berlin(day, hour, self.minutes[i % len(self.minutes)])
                    self.at(when, lambda s=subject, b=body, i=n, lg=lang: self.report(s, b, i, lg))
                    n += 1
            day += timedelta(days=1)
        for i, (lang, subject, body) in enumerate(STORM):  # Tuesday of week 1, 09:00-09:07
            self.at(berlin(GO_LIVE + timedelta(days=1), 9, i), lambda s=subject, b=body, k=i, lg=lang:
                    self.report(s, b, 100 + k, lg))
        beat = berlin(GO_LIVE, 8)
        end = berlin(GO_LIVE + timedelta(days=28), 8)
        while beat <= end:
            while self.actions and self.actions[0][0] <= beat:
                when, _, action = heapq.heappop(self.actions)
                self.clock.set(when)
                action()
            self.clock.set(beat)
            self.beat()
            beat += timedelta(minutes=30)
        return self.report_counts()

    def beat(self) -> None:
        """What every beat of ``run``/``tick`` does that queues team mail: the sweeps and the digests."""
        from notifier.sla_cli import periodic_job

        for _, job in periodic_job(self.app):  # the SLA sweeps (and, since issue 14, triage of batched tickets)
            job()
        if hasattr(self.app, "triage_digest"):  # the P3/P4 triage digest's beat (off unless [triage] says digest)
            self.app.triage_digest.run()
        from notifier.digests import for_app
        from notifier.scheduler import DigestScheduler

        sent = DigestScheduler(self.app.config, self.app.store, for_app(self.app), self.app.go_live).run(
            self.clock.now())
        if sent and not getattr(self, "cio_replied", False):
            self.cio_replied = True
            self.at(self.clock.now() + timedelta(hours=2), self.cio_answers_digest)

    # --- the people ----------------------------------------------------------------------------

    def report(self, subject: str, body: str, index: int, lang: str) -> None:
        sender = f"user{index}@customer.example"
        result = self.app.pipeline.ingest(mail(subject, body, sender))
        self.new_mails += 1
        if result.action != "created":
            return
        key = result.key
        t = self.ticket(key)
        if self.follow_up(t):
            return  # the team answers the incident's first report; this one is resolved with it
        now = self.clock.now()
        ack_after = timedelta(minutes=10 if t.severity == "P1" else 40)
        self.at(now + ack_after, lambda: self.team(key, "#ack"))
        resolve_at = self.app.calendar.next_business_start(now + timedelta(hours=20))
        self.at(resolve_at, lambda: self.team(key, f"#resolve Fixed: {subject}. Please check."))
        if index % 3 == 0:
            self.at(resolve_at + timedelta(hours=1), lambda: self.thank(key, sender, lang))

    def team(self, key: str, body: str) -> None:
        t = self.ticket(key)
        if t.status in ("resolved", "closed") and body.startswith("#resolve"):
            return
        owner = self.owner(t)
        text = (f"{body}\n\nOn Mon, 23 Nov 2026, CRM Hypercare Support <{SUPPORT}> wrote:\n> [{key}] {t.subject}\n")
        self.app.pipeline.ingest(mail(f"Re: [{key}] {t.subject}", text, owner.email,
                                      to=self.reply_address(key, owner.email), name=owner.name))
        self.replies += 1

    def reply_address(self, key: str, member: str) -> str:
        """The signed Reply-To of the desk's mail to *member* about *key* (per member since issue 13)."""
        try:
            return str(self.app.tokens.reply_address(key, member, self.clock.now()))
        except TypeError:  # a desk whose tokens are per ticket only
            return str(self.app.tokens.reply_address(key))

    def thank(self, key: str, sender: str, lang: str) -> None:
        t = self.ticket(key)
        self.app.pipeline.ingest(mail(f"Re: [{key}] Resolved: {t.subject}", THANKS[lang], sender))
        self.replies += 1

    def cio_answers_digest(self) -> None:
        with self.app.store.read() as session:
            digest = session.scalar(select(OutboxItem).where(OutboxItem.kind == "status_daily")
                                    .order_by(OutboxItem.id).limit(1))
            assert digest is not None
            subject, message_id = digest.subject, digest.message_id
        self.app.pipeline.ingest(mail(f"Re: {subject}", "Good progress, thanks. Keep the P2s moving.",
                                      "cio@customer.example", in_reply_to=message_id, name="Carl CIO"))
        self.replies += 1

    # --- facts ---------------------------------------------------------------------------------

    def ticket(self, key: str) -> Ticket:
        with self.app.store.read() as session:
            row = session.scalar(select(Ticket).where(Ticket.key == key))
            assert row is not None
            if hasattr(row, "incident"):
                _ = row.incident and row.incident.tickets
            return row

    @staticmethod
    def follow_up(ticket: Ticket) -> bool:
        try:
            from tickets.incidents import is_follow_up
        except ImportError:  # a desk without incidents: every report is answered on its own
            return False
        return is_follow_up(ticket)

    def owner(self, ticket: Ticket) -> TeamMember:
        if ticket.assignee:
            return next(m for m in TEAM if m.email == ticket.assignee)
        return next((m for m in TEAM if ticket.role in m.roles), TEAM[3])

    def report_counts(self) -> dict[str, Any]:
        with self.app.store.read() as session:
            items = list(session.scalars(select(OutboxItem)))
            severity = {row[0]: row[1] for row in session.execute(select(Ticket.id, Ticket.severity))}
        team = {m.email for m in TEAM}
        per_person: Counter[str] = Counter()
        per_kind: dict[str, Counter[str]] = {m.email: Counter() for m in TEAM}
        for item in items:
            for rcpt in item.recipients:
                if rcpt in team:
                    per_person[rcpt] += 1
                    per_kind[rcpt][item.kind] += 1
        triage = Counter(severity.get(item.ticket_id or 0, "?") for item in items if item.kind == "triage")
        return {"per_person": {m.email: per_person[m.email] for m in TEAM}, "per_kind": per_kind,
                "triage_by_severity": dict(triage),
                "new_mails": self.new_mails, "replies": self.replies, "outbox": len(items)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--triage", choices=("immediate", "digest"), default="immediate",
                        help="[triage] low_severity: P3/P4 triage notices one by one or in the digest")
    parser.add_argument("--per-day", type=int, default=2, choices=range(1, 41), metavar="N",
                        help="new requests per business day (default 2, the rehearsal of issue 14)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = Rehearsal(Path(tmp), triage=args.triage, per_day=args.per_day).run()
    print(f"rehearsal ([triage] low_severity = {args.triage!r}, {args.per_day} new requests a business day): "
          f"{figures['new_mails']} new mails, {figures['replies']} replies, "
          f"{figures['outbox']} mails queued in all")
    for email, n in figures["per_person"].items():
        kinds = ", ".join(f"{k} {v}" for k, v in figures["per_kind"][email].most_common())
        print(f"  {email:<20} {n:>4}   ({kinds})")
    print(f"  team total           {sum(figures['per_person'].values()):>4}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
