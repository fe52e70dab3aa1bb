"""The SMTP intake: an aiosmtpd handler that accepts mail for the support address.

Why so little: the receiver checks recipients and hands the raw message to the one
ingest pipeline; it knows nothing of tickets, rules or templates.  It answers 250
only once the pipeline has committed the message, and 451 when it could not, so
the sending MTA keeps the mail queued and tries again.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
from concurrent.futures import Executor
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

from config import SmtpInSettings, SupportSettings
from core.errors import UserError
from intake.pipeline import IngestPipeline, IngestUnavailable, RawMail
from intake.receive.group_commit import GroupCommitter
from tickets.our_mail import is_our_address

log = logging.getLogger("hypercare.smtp")


class PortInUse(UserError):
    """The intake port is taken; the message names host:port and the config key."""


class SupportAddressHandler:
    def __init__(self, pipeline: IngestPipeline, support: SupportSettings, parse_pool: Executor | None = None,
                 slots: TransferSlots | None = None) -> None:
        self.pipeline = pipeline
        self.support = support
        # Concurrent sessions share transactions (a group waits a moment for the open sessions' mail);
        # with a parse pool, parsing runs in its worker.
        self.store = GroupCommitter(pipeline, parse_pool=parse_pool,
                                    sessions=None if slots is None else lambda: slots.sessions)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if not is_our_address(self.support, address):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        try:
            result = await self.store.ingest(RawMail(data, "smtp", tuple(envelope.rcpt_tos)))
        except IngestUnavailable as exc:
            log.error("smtp intake deferred a message: %s", exc)
            return self._per_recipient(server, envelope, "451 4.3.0 cannot store the message now, try again later")
        return self._per_recipient(server, envelope, f"250 2.0.0 {result.key or result.action} queued")

    @staticmethod
    def _per_recipient(server: SMTP, envelope: Envelope, status: str) -> str:
        """LMTP answers DATA once per accepted recipient (RFC 2033 4.2); the message is stored once."""
        if isinstance(server, LMTP):
            return "\r\n".join([status] * max(1, len(envelope.rcpt_tos)))
        return status


class TransferSlots:
    """How many DATA transfers may run at once ([smtp_in] max_transfers); beyond it: 451, try later.

    Why: every transfer holds its message in memory until the pipeline has stored it, so unlimited
    parallel DATA from one peer could exhaust memory.  All connections run on the controller's one
    event loop, so a plain counter is enough.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0
        self.sessions = 0  # open connections (the group commit waits a moment for their mail)


DATA_BLOCK = 1 << 20  # bytes the reader may hold while DATA is read in blocks (commands keep aiosmtpd's 1001)


async def read_data(reader: asyncio.StreamReader, size_limit: int | None) -> bytes | None:
    """The message of one DATA transfer, dot-unstuffed; None when it was over *size_limit* (read and
    dropped, so the session can go on with 552).

    Why not aiosmtpd's loop: it reads, logs and keeps each line as its own bytearray, so a 47 MB
    mail was 640,000 awaits (1.2 s at a quiet moment) and ~4x its size in memory.  Here the stream is
    read in blocks up to the next ".CRLF"; that ends the data only where it starts a line (base64 has
    no ".", so a big attachment is a few dozen reads); the blocks are joined once.
    """
    blocks: list[bytes] = []
    received = 0
    previous = b"\r\n"  # the last two bytes read; first the DATA command's own line end
    while True:
        try:
            block = await reader.readuntil(b".\r\n")
        except asyncio.LimitOverrunError as exc:
            block = await reader.read(exc.consumed)
        ends = block.endswith(b".\r\n") and \
            (block[-5:-3] if len(block) >= 5 else (previous + block[:-3])[-2:]) == b"\r\n"
        if ends:
            block = block[:-3]
        received += len(block)
        if size_limit is None or received <= size_limit:
            blocks.append(block)
        else:
            blocks.clear()  # over the limit: read on to the end, keep nothing
        if ends:
            break
        previous = block[-2:] if len(block) >= 2 else (previous + block)[-2:]
    if size_limit is not None and received > size_limit:
        return None
    data = b"".join(blocks)
    del blocks
    if data.startswith(b"."):
        data = data[1:]
    if b"\r\n." in data:  # a line starting with "." was sent with one more (RFC 5321 4.5.2)
        data = data.replace(b"\r\n.", b"\r\n")
    return data


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# "<local@domain>" in its plainest form (dot-atoms of ASCII), then nothing, or blanks and parameters.
_PLAIN_ANGLE_ADDR = re.compile(rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+(?=[^\s(])|\Z)")


class _Bounded:
    """Mixed into aiosmtpd's SMTP and LMTP: DATA takes a transfer slot before the 354, frees it after,
    reads the message in blocks (``read_data``) instead of line by line, and reads a plain MAIL/RCPT
    address without the ``email`` header parser."""

    slots: TransferSlots
    _counted = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address reading, with a shortcut for ``<local@domain>`` made of dot-atoms.

        Why: aiosmtpd hands every MAIL FROM and RCPT TO to the ``email`` package's RFC 5322
        parser (a token tree per address): ~7 % of the daemon's interpreter time at 8 clients.
        For this plainest form the parser's answer is the text between the brackets and what
        follows the blanks after them; anything else (quoted local parts, comments, domain
        literals, non-ASCII, ``<>``, over-long local parts) goes to aiosmtpd's own code
        (``tests/test_smtp_intake.py`` compares the two on plain and hostile addresses).
        """
        match = _PLAIN_ANGLE_ADDR.match(arg) if arg else None
        if match is not None:
            address = match.group(1)
            limit = getattr(self, "local_part_limit", 0)
            if not limit or len(address.rpartition("@")[0]) <= limit:
                return address, arg[match.end():]
        return super()._getaddr(arg)  # type: ignore[misc]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if not self._counted:  # once per connection (STARTTLS calls this again)
            self._counted = True
            self.slots.sessions += 1

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.slots.sessions -= 1
        super().connection_lost(error)  # type: ignore[misc]

    async def smtp_DATA(self, arg: str) -> None:
        if self.slots.active >= self.slots.limit:
            await self.push("451 4.3.2 too many transfers at once, try again later")  # type: ignore[attr-defined]
            return
        self.slots.active += 1
        try:
            await self._data_in_blocks(arg)
        finally:
            self.slots.active -= 1

    async def _data_in_blocks(self, arg: str) -> None:
        """aiosmtpd 1.4.6's ``smtp_DATA`` with the reading replaced (the same checks and answers)."""
        server: Any = self
        if await server.check_helo_needed() or await server.check_auth_needed("DATA"):
            return
        if not server.envelope.rcpt_tos:
            await server.push("503 Error: need RCPT command")
            return
        if arg:
            await server.push("501 Syntax: DATA")
            return
        await server.push("354 End data with <CR><LF>.<CR><LF>")
        reader: asyncio.StreamReader = server._reader
        command_limit = reader._limit  # type: ignore[attr-defined]
        reader._limit = DATA_BLOCK  # type: ignore[attr-defined]
        try:
            content = await read_data(reader, server.data_size_limit)
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            server._writer.close()
            raise
        finally:
            reader._limit = command_limit  # type: ignore[attr-defined]
        if content is None:
            await server.push("552 Error: Too much mail data")
            server._set_post_data_state()
            return
        server.envelope.content = server.envelope.original_content = content
        status = await server._call_handler_hook("DATA")
        server._set_post_data_state()
        await server.push("250 OK" if status is MISSING else status)


class BoundedSMTP(_Bounded, SMTP):
    pass


class BoundedLMTP(_Bounded, LMTP):
    pass


class BoundedController(Controller):
    """The listener with its transfer slots (SMTP, or LMTP: LHLO, one DATA answer per recipient)."""

    def __init__(self, handler: Any, slots: TransferSlots, lmtp: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.slots, self.lmtp = slots, lmtp

    def factory(self) -> SMTP:
        server = (BoundedLMTP if self.lmtp else BoundedSMTP)(self.handler, **self.SMTP_kwargs)
        server.slots = self.slots
        return server


class SmtpReceiver:
    """Runs the handler in aiosmtpd's Controller thread (``start``/``stop``)."""

    def __init__(self, pipeline: IngestPipeline, support: SupportSettings, settings: SmtpInSettings,
                 parse_pool: Executor | None = None) -> None:
        self.settings = settings
        self.slots = TransferSlots(settings.max_transfers)
        self.handler = SupportAddressHandler(pipeline, support, parse_pool, self.slots)
        self.max_message_bytes = pipeline.config.intake.max_message_bytes
        self.controller: Controller | None = None

    def start(self) -> None:
        check_port_free(self.settings.host, self.settings.port, "[smtp_in] port")
        kwargs: dict[str, Any] = {"decode_data": False, "enable_SMTPUTF8": True,
                                  "data_size_limit": self.max_message_bytes}
        self.controller = BoundedController(self.handler, self.slots, self.settings.protocol == "lmtp",
                                            hostname=self.settings.host, port=self.settings.port,
                                            ready_timeout=10, **kwargs)
        self.controller.start()
        log.info("%s intake listening on %s:%s", self.settings.protocol, self.settings.host, self.settings.port)

    @property
    def port(self) -> int:
        return self.settings.port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
        self.handler.store.stop()


def check_port_free(host: str, port: int, key: str) -> None:
    """Fail early with one line when another process holds the port."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"{host}:{port} is already in use; stop the other process or change {key}") from None
            raise PortInUse(f"cannot listen on {host}:{port} ({exc.strerror}); change {key}") from None
