"""The desk behind its real SMTP intake and relay, for the reply-authority scenarios (issue 13).

Why a kit: every scenario sends mail to the real aiosmtpd intake with smtplib, reads what the
real relay captured, and asserts on the audit trail; spelling that out in each test would hide
what the test is about.
"""

from __future__ import annotations

import re
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from desk_kit import ADA, SUPPORT, desk_config, events, flush, ticket
from mailkit import Relay, free_port, make_mail

from config import SmtpInSettings
from intake.receive.smtp import SmtpReceiver

TOKEN_RE = re.compile(r"HC-\d+\.([0-9a-f]{29})(?![0-9a-f])", re.IGNORECASE)


@dataclass
class Desk:
    app: Any
    relay: Relay
    receiver: SmtpReceiver

    def send(self, raw: bytes, rcpt: str, sender: str) -> None:
        """Deliver *raw* through the real SMTP intake (250 only after the pipeline committed)."""
        raw = re.sub(rb"\r?\n", b"\r\n", raw)  # smtplib sends bytes as they are; SMTP wants CRLF
        with smtplib.SMTP("127.0.0.1", self.receiver.port, timeout=30) as smtp:
            smtp.sendmail(sender, [rcpt], raw)

    def flush(self) -> list[Any]:
        """Send the outbox through the real relay; return (and forget) what it captured."""
        flush(self.app)
        got = list(self.relay.deliveries)
        self.relay.deliveries.clear()
        return got

    def to(self, address: str, deliveries: list[Any]) -> list[Any]:
        return [d for d in deliveries if d.recipients == [address]]

    def events(self, key: str, kind: str | None = None) -> list[Any]:
        return events(self.app, key, kind)

    def ticket(self, key: str) -> Any:
        return ticket(self.app, key)


def start_desk(make_app: Any, tmp_path: Any, relay: Relay, db_url: str, **hypercare: Any) -> Iterator[Desk]:
    """The ``desk`` fixture (tests/conftest.py): the desk config, its SMTP intake on a free port, the relay."""
    app = make_app(desk_config(tmp_path, relay=relay, db_url=db_url, **hypercare))
    receiver = SmtpReceiver(app.pipeline, app.config.support, SmtpInSettings(host="127.0.0.1", port=free_port()))
    receiver.start()
    try:
        yield Desk(app, relay, receiver)
    finally:
        receiver.stop()


def mail(*, sender: str, to: str, subject: str, body: str, name: str = "", message_id: str | None = None,
         cc: str = "", in_reply_to: str | None = None) -> bytes:
    """``mailkit.make_mail`` with a Cc and any display name (or none)."""
    raw = make_mail(subject=subject, body=body, sender=sender, to=to, message_id=message_id,
                    headers={"Cc": cc} if cc else None, in_reply_to=in_reply_to, name=name or sender)
    return raw


def reply_to_of(delivery: Any) -> str:
    return str(delivery.message["Reply-To"])


def member_reply(desk: Desk, reply_to: str, body: str, *, sender: str = ADA.email, key: str = "",
                 name: str = "Team Member", message_id: str | None = None) -> None:
    """A (real or forged) team reply to the signed address *reply_to*, through SMTP."""
    raw = mail(sender=sender, to=reply_to, subject=f"Re: [{key}] escalation", body=body, name=name,
               message_id=message_id)
    desk.send(raw, reply_to, sender)


def report_by_smtp(desk: Desk, subject: str, body: str, *, sender: str, cc: str = "",
                   message_id: str | None = None) -> str:
    raw = mail(sender=sender, to=SUPPORT, subject=subject, body=body, name="Maria Keller", cc=cc,
               message_id=message_id)
    desk.send(raw, SUPPORT, sender)
    return _latest_key(desk)


def _latest_key(desk: Desk) -> str:
    from sqlalchemy import select

    from tickets.models import Ticket

    with desk.app.store.read() as s:
        return str(s.scalar(select(Ticket.key).order_by(Ticket.id.desc()).limit(1)))
