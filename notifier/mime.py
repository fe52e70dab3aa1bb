"""Build outgoing MIME messages, headers only through the ``email`` API.

Why here: every mail we send must carry our Message-ID (so replies thread), our loop
header (so our own mail coming back is never answered) and the right
``Auto-Submitted`` value; and no subject or display name may inject a header.
The modern ``EmailMessage`` API refuses CR/LF in header values, which we rely on.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.generator import BytesGenerator
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage
from email.policy import EmailPolicy
from functools import lru_cache
from io import BytesIO
from typing import Any

from core.email_headers import HeaderClasses
from core.errors import HypercareError
from tickets.our_mail import LOOP_HEADER, MESSAGE_ID_PREFIX


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass
class OutgoingMail:
    """What a notifier wants to send, before it becomes bytes."""

    kind: str  # ack | escalation | status_daily | ...
    to: Sequence[str]
    subject: str
    text: str
    html: str | None = None
    reply_to: str | None = None
    in_reply_to: str | None = None  # bare Message-ID, no angle brackets
    references: Sequence[str] = ()
    auto_submitted: str = "auto-replied"  # auto-replied (answers) | auto-generated (digests)
    extra_headers: dict[str, str] = field(default_factory=dict)
    attachments: Sequence[OutgoingAttachment] = ()  # e.g. the screenshot a team member sent with an answer


def new_message_id(kind: str, domain: str) -> str:
    """``hc.<kind>.<random>@<domain>``: recognisable by the loop guard and unique."""
    return f"{MESSAGE_ID_PREFIX}{kind}.{secrets.token_hex(10)}@{domain}"


_ADDR_SPEC = re.compile(r"[!#-'*+\-/-9=?A-Z^-~.]+@[A-Za-z0-9.-]+")  # RFC 5321 dot-atom, ASCII only
_MSGID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII without spaces, '<' or '>'
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


class BadAddress(HypercareError, ValueError):
    """An address that cannot safely go into a header or an SMTP command (CR/LF, spaces, no domain)."""


def clean_address(value: str) -> str:
    """*value* as a bare addr-spec, or BadAddress: nothing with CR/LF, spaces or brackets gets through."""
    candidate = value.strip()
    if not _ADDR_SPEC.fullmatch(candidate):
        raise BadAddress(f"not a plain email address: {value!r}")
    return candidate


def clean_message_id(value: str) -> str | None:
    """A Message-ID without its angle brackets, or None when it carries anything a header must not."""
    candidate = value.strip().strip("<>")
    return candidate if _MSGID.fullmatch(candidate) else None


def sanitize_header_text(value: str) -> str:
    """Fold any CR/LF/control characters a user put into a subject or name into spaces."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


class _Generator(BytesGenerator):
    """``BytesGenerator`` whose boundary check skips the regex when the boundary is nowhere in the text.

    Same boundary as the stdlib (same random draw); the stdlib compiles a new regex per mail.
    """

    @classmethod
    def _make_boundary(cls, text: Any = None) -> str:
        boundary: str = super()._make_boundary(None)
        if text is None or ("--" + boundary).encode("ascii") not in text:
            return boundary
        candidate, counter = boundary, 0
        while cls._compile_re("^--" + re.escape(candidate) + "(--)?$", re.MULTILINE).search(text):
            candidate = f"{boundary}.{counter}"
            counter += 1
        return candidate


def refold(folded: bytes, linesep: bytes, limit: int) -> bytes:
    """*folded* (``Name: value`` + linesep, as the stdlib folded it) folded again only where lines
    exceed *limit*, and never straight after the colon.

    Why: the stdlib moves a whole value to the next line when it would fit there alone, so a
    76-character subject became ``Subject:`` + CRLF + `` [HC-12] ...``, which many clients show
    with a leading space.  Unfolding (removing the CRLFs, keeping the whitespace after them) and
    breaking again before existing spaces changes no character of the value (RFC 5322 2.2.3);
    encoded words stay whole.
    """
    body = folded[:-len(linesep)] if folded.endswith(linesep) else folded
    name, colon, value = body.replace(linesep, b"").partition(b":")
    if not colon:
        return folded
    words = value.lstrip(b" \t").split(b" ")
    lines = [name + b": " + words[0]]
    for word in words[1:]:
        if word and len(lines[-1]) + 1 + len(word) > limit:
            lines.append(b" " + word)
        else:
            lines[-1] += b" " + word
    return linesep.join(lines) + linesep


class _OutgoingPolicy(EmailPolicy):
    """``policy.default`` (or ``policy.SMTP``) that builds and folds each repeated header value once.

    Why: building an acknowledgement spent most of its time in ``email.headerregistry``
    parsing values that are the same in every mail we send (``Content-Type: text/plain;
    charset="utf-8"``, ``MIME-Version``, ``Auto-Submitted``, our loop header) and folding
    them again when generating bytes.  Header objects are immutable, so one parsed (and one
    folded) copy per distinct value is shared; values that differ per mail (subject,
    recipients, Message-IDs, the multipart boundary) are parsed as before.  The cache is
    small and bounded; every value still goes through the ``email`` header API.
    """

    SHARED = frozenset({"mime-version", "content-type", "content-transfer-encoding", "content-disposition",
                        "auto-submitted", "x-auto-response-suppress", "x-hypercare-loop"})

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        object.__setattr__(self, "_parsed", {})
        object.__setattr__(self, "_folded", {})

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        if not isinstance(value, str) or isinstance(value, BaseHeader) or name.lower() not in self.SHARED \
                or "boundary=" in value:
            return super().header_store_parse(name, value)
        cache: dict[tuple[str, str], tuple[str, Any]] = self._parsed  # type: ignore[attr-defined]
        key = (name, value)
        stored = cache.get(key)
        if stored is None:
            if len(cache) > 256:
                cache.clear()
            stored = cache[key] = super().header_store_parse(name, value)
        return stored

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() == "subject":
            return refold(super().fold_binary(name, value), self.linesep.encode(), self.max_line_length or 78)
        if not isinstance(value, BaseHeader) or name.lower() not in self.SHARED or "boundary=" in value:
            return super().fold_binary(name, value)
        cache: dict[tuple[str, str], bytes] = self._folded  # type: ignore[attr-defined]
        key = (name, str(value))
        folded = cache.get(key)
        if folded is None:
            if len(cache) > 256:
                cache.clear()
            folded = cache[key] = super().fold_binary(name, value)
        return folded


_HEADERS = HeaderClasses()
_BUILD_POLICY = _OutgoingPolicy(header_factory=_HEADERS)  # == email.policy.default
_SMTP_POLICY = _OutgoingPolicy(header_factory=_HEADERS, linesep="\r\n")  # == email.policy.SMTP


@lru_cache(maxsize=64)
def _sender_header(address: str, name: str) -> BaseHeader:
    """The ``From`` header for our own address, built (and checked) once: it is the same on every mail."""
    value = Address(display_name=sanitize_header_text(name), addr_spec=clean_address(address))
    header: BaseHeader = _BUILD_POLICY.header_factory("From", value)
    return header


def parse_outgoing(data: bytes) -> EmailMessage:
    """Our own stored mail as a message again (``notifier.send_time`` fills it in and builds it anew)."""
    from email import message_from_bytes

    return message_from_bytes(data, _class=EmailMessage, policy=_BUILD_POLICY)


def as_smtp_bytes(msg: EmailMessage) -> bytes:
    """*msg* as the bytes smtplib sends: ``policy.SMTP`` (CRLF line ends), shared header folds."""
    buffer = BytesIO()
    _Generator(buffer, mangle_from_=False, policy=_SMTP_POLICY).flatten(msg)
    return buffer.getvalue()


def build_mime(
    mail: OutgoingMail, *, sender_address: str, sender_name: str, message_id: str, date: datetime
) -> EmailMessage:
    """The MIME message of *mail*; every header value is cleaned or built as an object, so no
    CR/LF from a subject, a name, an address or a Message-ID can ever start a header of its own."""
    msg = EmailMessage(policy=_BUILD_POLICY)
    msg["From"] = _sender_header(sender_address, sender_name)
    msg["To"] = [Address(addr_spec=clean_address(a)) for a in mail.to]
    msg["Subject"] = sanitize_header_text(mail.subject)
    msg["Date"] = date  # DateHeader formats it with format_datetime (a string would be parsed back first)
    msg["Message-ID"] = f"<{clean_message_id(message_id) or new_message_id(mail.kind, 'localhost')}>"
    if mail.reply_to:
        msg["Reply-To"] = Address(addr_spec=clean_address(mail.reply_to))
    in_reply_to = clean_message_id(mail.in_reply_to) if mail.in_reply_to else None
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    refs = list(dict.fromkeys(r for r in (clean_message_id(x) for x in mail.references if x) if r))
    if in_reply_to and in_reply_to not in refs:
        refs.append(in_reply_to)
    if refs:
        # The root and the newest 19: RFC 5322 3.6.4 trimming keeps the first and the last ones.
        kept = refs if len(refs) <= 20 else [refs[0], *refs[-19:]]
        msg["References"] = " ".join(f"<{r}>" for r in kept)
    msg["Auto-Submitted"] = mail.auto_submitted
    msg[LOOP_HEADER] = sender_address
    # Ask Exchange and friends not to answer us with out-of-office replies.
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in mail.extra_headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        msg[name] = sanitize_header_text(value)
    msg.set_content(mail.text)
    if mail.html is not None:
        msg.add_alternative(mail.html, subtype="html")
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if not subtype or maintype in ("multipart", "message") or not attachment.content_type.isascii():
            maintype, subtype = "application", "octet-stream"  # never a container we would have to encode
        msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                           filename=sanitize_header_text(attachment.filename) or "attachment")
    return msg
