"""``/healthz``: is the database reachable, and is the mailbox being read?

Why these two: they are what makes the desk deaf.  The database is pinged directly; the
mailbox's health is what the IMAP poller last recorded in ``ImapState`` (last success,
last error), because the dashboard must not open IMAP connections of its own on every
probe.  Without ``[imap]`` mail arrives by SMTP into this very process, so only the
database counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from tickets.health import mailbox_health
from tickets.store import DatabaseUnavailable


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
    try:
        app.store.ping()
        health.checks["database"] = "ok"
    except (DatabaseUnavailable, SQLAlchemyError) as exc:
        health.fail("database", f"unreachable ({type(exc).__name__})")
        if app.config.imap is not None:
            health.fail("mailbox", "unknown: database unreachable")
        return health
    if app.config.imap is None:
        health.checks["mailbox"] = "ok (no IMAP configured; SMTP intake)"
        return health
    try:
        with app.store.read() as session:
            boxes = mailbox_health(session, app.config, app.clock.now())
    except SQLAlchemyError as exc:
        health.fail("mailbox", f"state unreadable ({type(exc).__name__})")
        return health
    for box in boxes:
        if box.problem is None:
            health.checks[f"mailbox {box.mailbox}"] = "ok"
        elif box.configured:
            health.fail(f"mailbox {box.mailbox}", box.problem)
    return health
