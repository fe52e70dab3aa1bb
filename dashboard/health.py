"""``/healthz``: is the database there, is the mailbox being read, can the desk speak?

Why these: the database and the mailbox are what makes the desk deaf; the relay and the outbox
(dead mail, stuck claims, an old backlog) what makes it mute (issue 11).  The judgements are
``tickets.health``'s, the same as ``hypercare status``.  The database is probed directly
(2 s at most); the mailbox's and the relay's health is what the poller and the outbox last
recorded (``ImapState``, ``RelayState``), because the dashboard must not open IMAP or SMTP
connections of its own on every probe.  Without ``[imap]`` mail arrives by SMTP into this
very process, so the mailbox check is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from tickets.health import database_problem, mailbox_health, outbox_counts, relay_health
from tickets.store import DatabaseMisconfigured, DatabaseUnavailable


@dataclass
class Health:
    ok: bool = True
    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or the reason
    reasons: list[str] = field(default_factory=list)

    def fail(self, name: str, reason: str) -> None:
        self.ok = False
        self.checks[name] = reason
        self.reasons.append(f"{name}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "unavailable", "checks": self.checks,
                "reason": "; ".join(self.reasons) or None}


def check_health(app: Any) -> Health:
    health = Health()
    probe = database_problem(app.config)  # within 2 s, busy told apart from unreachable
    if not probe.ok:
        health.fail("database", f"{probe.state} ({probe.detail})")
        if app.config.imap is not None:
            health.fail("mailbox", "unknown: database unavailable")
        return health
    health.checks["database"] = "ok"
    now = app.clock.now()
    try:
        with app.store.read() as session:
            boxes = mailbox_health(session, app.config, now) if app.config.imap is not None else []
            relays = relay_health(session, app.config, now)
            outbox = outbox_counts(session, now)
    except (DatabaseUnavailable, DatabaseMisconfigured, SQLAlchemyError) as exc:
        health.fail("database", f"state unreadable ({type(exc).__name__})")
        return health
    if app.config.imap is None:
        health.checks["mailbox"] = "ok (no IMAP configured; SMTP intake)"
    for box in boxes:
        if box.problem is None:
            health.checks[f"mailbox {box.mailbox}"] = "ok"
        elif box.configured:
            health.fail(f"mailbox {box.mailbox}", box.problem)
    for relay in relays:
        if relay.configured:
            if relay.problem is None:
                health.checks[f"relay {relay.relay}"] = "ok"
            else:
                health.fail(f"relay {relay.relay}", relay.problem)
    problems = outbox.problems(now)
    if problems:
        health.fail("outbox", "; ".join(problems))
    else:
        health.checks["outbox"] = "ok"
    return health
