"""Rehearse four weeks of hypercare and regenerate the screenshots in docs/.

    .venv/bin/python docs/rehearsal.py [--out docs] [--keep DIR]

Why a script: the pictures in the README must show what the code does today, not what it did
when someone last took a screenshot.  Every mail goes through the real pipeline (parse, guards,
classifier, acknowledgement, signed team replies with commands), on a frozen clock that walks
from go-live to the exit date; then the dashboard, the three digests and the exit report are
rendered as a stakeholder would see them and photographed by headless Chromium (Debian's
``chromium``; nothing is downloaded).  Without Chromium it still writes the HTML files and says so.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import App  # noqa: E402 - the repository root first, so the script runs from anywhere
from config import (  # noqa: E402
    Config,
    DashboardSettings,
    DatabaseSettings,
    HypercareSettings,
    SmtpOutSettings,
    StakeholderSettings,
    SupportSettings,
    TeamMember,
)
from tickets.clock import FrozenClock  # noqa: E402

TZ = ZoneInfo("Europe/Berlin")
GO_LIVE = date(2026, 11, 23)
SUPPORT = "support@example.com"
ADA = TeamMember("Ada Admin", "ada@example.com", ("crm_admin",))
BEN = TeamMember("Ben Analyst", "ben@example.com", ("business_analyst",), on_call=True)
TIM = TeamMember("Tim Tech", "tim@example.com", ("technical_consultant",))
PAM = TeamMember("Pam Manager", "pam@example.com", ("project_manager",))
# (subject, body, answered after hours or None, resolved after hours or None)
KINDS = (
    ("Cannot log in after the password reset", "Since the reset I cannot log in, it says account locked.", 2, 6),
    ("Invoice export to ERP failing", "The integration with SAP fails since this morning, orders are not sent.", 1, 8),
    ("Opportunity stage missing in the picklist", "The stage 'Negotiation' is missing for my team.", 3, 30),
    ("Report filter shows last year's data", "The pipeline report filter ignores the fiscal year.", 5, 50),
    ("Feature request: colour for VIP accounts", "Could VIP accounts be highlighted in the list view?", None, None),
    ("How do I transfer my accounts to a colleague?", "I am leaving the team, how do I hand over accounts?", 4, 10),
    ("Typo in the quote PDF footer", "The footer of the quote PDF says 'Sincerly'. Minor, there is a workaround.",
     6, 72),
)
# Day 15 (a Tuesday), 07:30: the CRM is down for five people (one incident, resolved within the hour); the exit
# morning, 07:00: three people report the same small problem (an incident still open, with the team's #update).
OUTAGE = (("CRM is down", "Nobody can log in since 7:30, the whole sales team is blocked."),
          ("CRM down?", "Is the CRM down? I get an error 503 when I open it."),
          ("CRM ausgefallen", "Das CRM ist komplett ausgefallen, wir bekommen nur eine Fehlerseite 503."),
          ("CRM en panne", "Le CRM est en panne depuis ce matin, erreur 503, personne ne peut se connecter."),
          ("Outage: CRM not loading", "The CRM is down for our whole team, the page does not load (503)."))
SMALL = (("Quote PDF shows the old logo", "The quote PDF still shows the old logo in the header; a workaround exists."),
         ("Old logo on the quote PDF", "Our quote PDFs show the old logo again, minor, there is a workaround."),
         ("Quote PDF logo outdated", "The logo in the quote PDF header is the old one; cosmetic, workaround exists."))
SCREENS = (("dashboard", 1366, 1900), ("status_daily", 720, 1500), ("weekly_summary", 720, 1900),
           ("exit_report", 720, 2600), ("status_page", 1024, 900))


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(GO_LIVE + timedelta(days=day), time(hour, minute), tzinfo=TZ).astimezone(UTC)


def _mail(subject: str, body: str, sender: str, to: str, name: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@rehearsal.example>"
    msg.set_content(body)
    return msg.as_bytes()


def rehearse(folder: Path) -> tuple[App, FrozenClock, dict[str, Path]]:
    """Four weeks through the real pipeline; each digest is rendered at its own time, as it was sent."""
    clock = FrozenClock(_local(0, 8))
    config = Config(base_dir=folder, support=SupportSettings(address=SUPPORT),
                    database=DatabaseSettings(url=f"sqlite:///{folder / 'rehearsal.db'}"),
                    hypercare=HypercareSettings(go_live=GO_LIVE, timezone="Europe/Berlin", holidays="DE"),
                    smtp_out=SmtpOutSettings(maildir=str(folder / "outbox")),
                    team=(ADA, BEN, TIM, PAM), dashboard=DashboardSettings(status_days=14),
                    stakeholders=StakeholderSettings(daily=("cio@example.com",), weekly=("sponsor@example.com",)))
    app = App(config, clock, io.StringIO(), io.StringIO(), {"HYPERCARE_REPLY_SECRET": "rehearsal"})
    from notifier.digests import for_app

    builder = for_app(app)
    exit_at = datetime.combine(builder.exit_day, time(8), tzinfo=TZ).astimezone(UTC)
    events: list[tuple[datetime, str, str]] = [  # (when, what, ticket key or digest): replies and snapshots
        (_local(2, 8), "digest", "status_daily"), (_local(7, 8), "digest", "weekly_summary"),
        (exit_at, "digest", "exit_report")]
    pages: dict[str, Path] = {}
    for day in range(0, 26):
        for n, (subject, body) in enumerate({15: OUTAGE, 25: SMALL}.get(day, ())):
            at = _local(day, 7, (30 if day == 15 else 0) + 2 * n)
            _advance(app, clock, events, at, pages, folder)
            key = app.pipeline.ingest(_mail(subject, body, f"user{day}.x{n}@customer.example", SUPPORT,
                                            f"User {day}.x{n}")).key
            if n == 0:  # the team tells everyone where it stands (the status page shows it)
                update = ("#update The single sign-on proxy is being restarted, expected back by 08:30."
                          if day == 15 else "#update The new logo is in the next template release (Monday).")
                events.append((at + timedelta(minutes=40), update, key))
                if day == 15:
                    events.append((at + timedelta(minutes=70), "#resolve The proxy was restarted; log in again.",
                                   key))
        per_day = max(1, 9 - day // 3)  # intake falls as the system settles
        for n in range(per_day):
            subject, body, answer, resolve = KINDS[(day * 3 + n) % len(KINDS)]
            at = _local(day, 8 + (n * 7) % 9, (n * 13) % 60)
            _advance(app, clock, events, at, pages, folder)
            result = app.pipeline.ingest(_mail(subject, body, f"user{day}.{n}@customer.example", SUPPORT,
                                               f"User {day}.{n}"))
            if answer is not None:
                late = 6 if day == 3 and n < 3 else 0  # the bad morning of day 3
                events.append((at + timedelta(hours=answer + late), "#ack\nWe are on it.", result.key))
            if resolve is not None:
                events.append((at + timedelta(hours=resolve), "#resolve Fixed; please check.", result.key))
    _advance(app, clock, events, exit_at, pages, folder)
    return app, clock, pages


def _advance(app: App, clock: FrozenClock, events: list[tuple[datetime, str, str]], until: datetime,
             pages: dict[str, Path], folder: Path) -> None:
    """Let the team's replies and the digests due before *until* happen, in time order, then set the clock."""
    from notifier.digests import for_app

    events.sort()
    while events and events[0][0] <= until:
        when, what, target = events.pop(0)
        clock.set(when)
        if what == "digest":
            pages[target] = folder / f"{target}.html"
            pages[target].write_text(for_app(app).render(target, when).html or "", encoding="utf-8")
            continue
        member = {"crm_admin": ADA, "business_analyst": BEN}.get(_role(app, target), TIM)
        address = app.tokens.reply_address(target, member.email, when)
        app.pipeline.ingest(_mail(f"Re: [{target}] your request", what, member.email, address, member.name))
    clock.set(until)
    app.outbox.flush(app.transport())


def _role(app: App, key: str) -> str:
    from tickets.lifecycle import find_by_key

    with app.store.read() as session:
        ticket = find_by_key(session, key)
        return ticket.role if ticket is not None else ""


def render_dashboard(app: App, clock: FrozenClock, folder: Path, pages: dict[str, Path]) -> None:
    """The dashboard on the exit date, once the project manager recorded the steering decision, and the
    public status page (``/status``) of that morning."""
    from dashboard.pages import overview_html, status_html
    from dashboard.summary import DashboardContext
    from tickets.decisions import parse_decision, record_decision

    with app.store.session() as session:
        record_decision(session, parse_decision("conditional HC-12 fixed and the ERP sync stable by Friday"),
                        PAM, clock.now(), "cli")
    context = DashboardContext(app.config, app.sla, app.go_live, clock.now())
    with app.store.read() as session:
        pages["dashboard"] = folder / "dashboard.html"
        pages["dashboard"].write_text(overview_html(session, context, app.renderer, static=True), encoding="utf-8")
        pages["status_page"] = folder / "status_page.html"
        pages["status_page"].write_text(status_html(session, context, app.renderer, static=True), encoding="utf-8")


def photograph(pages: dict[str, Path], out: Path) -> list[Path]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: wrote the HTML pages only (apt-get install chromium for the pictures)")
        return []
    shots = []
    for name, width, height in SCREENS:
        target = out / f"{name}.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--disable-background-networking", "--no-first-run", f"--window-size={width},{height}",
                        f"--screenshot={target}", pages[name].as_uri()],
                       check=True, capture_output=True, timeout=120)
        shots.append(target)
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where the PNG files go (default: docs/)")
    parser.add_argument("--keep", metavar="DIR", help="keep the rehearsal (database, HTML, Maildir) in DIR")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hypercare-rehearsal-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        app, clock, pages = rehearse(work)
        render_dashboard(app, clock, work, pages)
        for path in photograph(pages, out):
            print(path)
        if args.keep:
            print(f"rehearsal kept in {work} (the HTML pages, rehearsal.db, the Maildir outbox/)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
