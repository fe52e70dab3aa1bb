"""Test helpers: build mails, and a real aiosmtpd relay that captures and injects faults."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from ports import free_port

SYLLABLES = ("ka", "lo", "mi", "re", "tu", "sa", "ne", "vo", "pi", "da", "gu", "fe", "zo", "wi", "be", "ho")


def made_up_words(rng: random.Random, syllables: int = 4) -> Callable[[], str]:
    """A source of words no language has and no call repeats: mails that share none of them share no
    significant term, so incident grouping (issue 14) sees each as its own problem."""
    seen: set[str] = set()

    def word() -> str:
        while True:
            w = "".join(rng.choice(SYLLABLES) for _ in range(syllables))
            if w not in seen:
                seen.add(w)
                return w

    return word


def make_mail(
    subject: str = "CRM is down",
    body: str = "Nobody can log in since 8:00, the whole sales team is blocked.",
    sender: str = "maria@customer.example",
    to: str = "support@localhost",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    in_reply_to: str | None = None,
    name: str = "Maria Keller",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{name} <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id or uuid.uuid4().hex + '@customer.example'}>"
    msg["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    return msg.as_bytes()


def parse(data: bytes) -> EmailMessage:
    return message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Delivery:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return parse(self.data)


@dataclass
class CapturingHandler:
    """Captures every DATA; ``faults`` holds answers for the next transactions ("451 ...", "drop", "slow:<s>")."""

    deliveries: list[Delivery] = field(default_factory=list)
    faults: deque[str] = field(default_factory=deque)
    connections: int = 0
    # Per recipient: the answer to its RCPT TO ("450 4.2.0 greylisted", "550 5.1.1 unknown"), every time.
    rcpt_faults: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if address in self.rcpt_faults:
            return self.rcpt_faults[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.faults:
            fault = self.faults.popleft()
            if fault == "drop":
                server.transport.close()
                return "421 closing"
            if fault.startswith("slow"):
                await asyncio.sleep(float(fault.split(":")[1]))
            else:
                return fault
        self.deliveries.append(Delivery(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


class Relay:
    def __init__(self, port: int | None = None, handler: CapturingHandler | None = None) -> None:
        self.handler = handler or CapturingHandler()
        self.port = port or free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     decode_data=False)

    def start(self) -> Relay:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def deliveries(self) -> list[Delivery]:
        return self.handler.deliveries

