"""What a stored mail becomes when it leaves: facts that change until then, and reply addresses.

Why at send time (issue 14): a mail is rendered when its cause happens (a new P1, a beat), stored in
the outbox, and sent a moment or hours later (relay down, retries).  Two things in it are only true
when it leaves:

* **the incident's reports.**  The P1 page of an outage is queued with the first report; by the time
  it leaves, more reports may have joined.  A team mail about a ticket that may belong to an
  incident carries a marker line (``incident_marker``) instead of the count; here it becomes the
  incident's key, the number of reports, the time span and the reporters as they are at this moment
  (or, for a lone P1, "1 report so far").  So every team mail shows the count at the time it left.
* **the reply addresses in a body.**  The triage digest lists many tickets, each with the address
  that lets this member act on it (``support+HC-12.<token>@``).  Like the ``Reply-To`` of a team mail,
  each is stored as the unsigned placeholder and signed here for the one recipient
  (``ReplyTokens.sign_text``), so the database never holds a credential.

Only mail that asks for it (header ``X-Hypercare-Fill``, removed before sending) is parsed and built
again (``email`` API: the transfer encoding is chosen afresh, so a quoted-printable or base64 body is
no obstacle); every other mail only gets its ``Reply-To`` signed (``ReplyTokens.sign_mail``), as before.
A failure while filling sends the mail as stored (the marker reads as a sentence; an unsigned
placeholder authorises nothing) rather than holding up the outbox.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy import select

from config import Config
from notifier.mime import as_smtp_bytes, parse_outgoing
from tickets.models import Ticket
from tickets.store import Store
from tickets.tokens import ReplyTokens

log = logging.getLogger("hypercare.outbox")

FILL_HEADER = "X-Hypercare-Fill"
INCIDENT, REPLY_ADDRESSES = "incident", "reply-addresses"  # what a mail asks to be filled
_FILL_BYTES = re.compile(rb"(?:^|\n)" + FILL_HEADER.encode() + rb":", re.IGNORECASE)
_MARKER = re.compile(r"\[(?P<key>[A-Z][A-Z0-9]{0,9}-\d{1,12}): the incident reports are filled in when this mail "
                     r"is sent\]")
REPORTERS_SHOWN = 12  # reporters named in a team mail; the rest are counted


def incident_marker(key: str) -> str:
    """The line a team mail carries where the incident's facts go (also what a stored copy shows)."""
    return f"[{key}: the incident reports are filled in when this mail is sent]"


class SendTimeFill:
    """The outbox's last step before the transport (``Outbox(sign=...)``): fill, then sign."""

    def __init__(self, config: Config, store: Store, tokens: ReplyTokens) -> None:
        self.config = config
        self.store = store
        self.tokens = tokens
        self.tz: ZoneInfo = config.hypercare.tz

    def __call__(self, data: bytes, recipients: Sequence[str], now: datetime) -> bytes:
        end = data.find(b"\r\n\r\n")
        if _FILL_BYTES.search(data[:end if end >= 0 else len(data)]) is not None:
            try:
                data = self.fill(data, recipients, now)
            except Exception:  # the mail still leaves, as stored: an outbox must not stall on a fill
                log.exception("filling a mail at send time failed; sending it as stored")
        return self.tokens.sign_mail(data, recipients, now)

    def fill(self, data: bytes, recipients: Sequence[str], now: datetime) -> bytes:
        msg = parse_outgoing(data)
        wanted = set(str(msg.get(FILL_HEADER, "")).split())
        del msg[FILL_HEADER]
        facts: dict[str, list[str]] = {}
        for part in msg.walk():
            if part.get_content_maintype() != "text" or part.is_attachment():
                continue
            subtype = part.get_content_subtype()
            text = original = part.get_content()
            if INCIDENT in wanted:
                html = subtype == "html"
                text = _MARKER.sub(lambda m, html=html: self._incident(m["key"], now, facts, html=html), text)
            if REPLY_ADDRESSES in wanted:
                text = self.tokens.sign_text(text, recipients, now)
            if text != original:
                part.set_content(text, subtype=subtype)
        return as_smtp_bytes(msg)

    def _incident(self, key: str, now: datetime, cache: dict[str, list[str]], *, html: bool) -> str:
        if key not in cache:
            cache[key] = self.incident_lines(key, now)
        if html:
            return "<br>\n".join(escape(line.strip()) for line in cache[key])
        return "\n".join(cache[key])

    def incident_lines(self, key: str, now: datetime) -> list[str]:
        """The incident of ticket *key* as it is now: key, count, span, status, reporters (text lines)."""
        with self.store.read() as session:
            ticket = session.scalar(select(Ticket).where(Ticket.key == key))
            if ticket is None:
                return [f"  Reports:         {key} (no longer stored)"]
            incident = ticket.incident
            local = now.astimezone(self.tz)
            if incident is None:
                at = ticket.created_at.astimezone(self.tz)
                return [f"  Reports:         1 so far ({key}, {at:%H:%M}; as of {local:%H:%M})",
                        "                   later reports of the same problem join its incident and page",
                        "                   nobody again; every later mail about it shows their count"]
            reports = sorted(incident.tickets, key=lambda t: (t.created_at, t.id))
            first, last = reports[0].created_at.astimezone(self.tz), incident.last_report_at.astimezone(self.tz)
            reporters = [t.reporter for t in reports]
            named = ", ".join(reporters[:REPORTERS_SHOWN])
            if len(reporters) > REPORTERS_SHOWN:
                named += f" and {len(reporters) - REPORTERS_SHOWN} more"
            count = f"{len(reports)} report{'s' if len(reports) != 1 else ''}"
            return [f"  Incident:        {incident.key}, {count} ({first:%H:%M}-{last:%H:%M}), {incident.status}"
                    f" (as of {local:%H:%M})",
                    f"  Reporters:       {named}",
                    "  (#resolve here resolves every report and tells each reporter; #update <text> tells later"
                    " reporters)"]
