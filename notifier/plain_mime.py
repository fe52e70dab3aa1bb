"""Outgoing mail as bytes without the ``email`` object tree, for the plain common case.

Why: an acknowledgement went through ``EmailMessage`` (header objects, content manager,
generator) for every new ticket, about 1-3 ms of the storing process's time, although
only a handful of short ASCII values differ from one acknowledgement to the next.  Here
the constant headers (``From``, ``Auto-Submitted``, our loop header, the MIME headers)
are folded once per sender; the per-mail headers are written as text when they are plain
printable ASCII that needs no folding and no encoding.  Anything else (a non-ASCII
subject, a line that would need folding, attachments, extra headers) returns None and
the caller uses ``notifier.mime.build_mime``, the one place that knows every rule.  The
bodies get the transfer encoding ``email.contentmanager`` would choose (7bit/8bit when
every line fits, else quoted-printable or base64); ``tests/test_plain_mime.py`` parses both
builds and compares every header and part (and the bytes, where no quoted-printable is involved).
"""

from __future__ import annotations

import binascii
import random
import re
import sys
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

from notifier.mime import OutgoingMail, as_smtp_bytes, build_mime, clean_address, clean_message_id
from tickets.our_mail import LOOP_HEADER

MAX_LINE = 78  # policy.max_line_length: a longer header line would need folding
_PLAIN = re.compile(r"[ -~]*")  # printable ASCII and space
_CRLF = "\r\n"
_TOKEN_WIDTH = len(repr(sys.maxsize - 1))  # the stdlib generator's boundary format


@lru_cache(maxsize=16)
def _constant_headers(sender_address: str, sender_name: str, auto_submitted: str) -> tuple[bytes, bytes]:
    """(``From`` line, the lines after the per-mail ones), folded by the ``email`` API once."""
    sample = build_mime(OutgoingMail(kind="x", to=[], subject="", text="", auto_submitted=auto_submitted),
                        sender_address=sender_address, sender_name=sender_name, message_id="x@x",
                        date=datetime(2000, 1, 1).astimezone())
    head = as_smtp_bytes(sample).split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = _unfolded_lines(head)
    wanted = ("auto-submitted", LOOP_HEADER.lower(), "x-auto-response-suppress")
    sender = next(line for line in lines if line.lower().startswith("from:"))
    tail = [line for line in lines if line.split(":", 1)[0].lower() in wanted]
    return (sender + _CRLF).encode("ascii"), "".join(line + _CRLF for line in tail).encode("ascii")


def _unfolded_lines(head: str) -> list[str]:
    """Header lines with their continuation lines kept together (still folded)."""
    lines: list[str] = []
    for line in head.split(_CRLF):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += _CRLF + line
        else:
            lines.append(line)
    return lines


def _header(name: str, value: str) -> str | None:
    """``Name: value`` CRLF when it is plain and fits on one line, else None (the caller falls back)."""
    line = f"{name}: {value}"
    if len(line) > MAX_LINE or not _PLAIN.fullmatch(value) or "=?" in value or value != value.strip():
        return None
    return line + _CRLF


_LAST_DATE: tuple[datetime | None, str] = (None, "")


def _date_header(date: datetime) -> str:
    """``format_datetime``, once per time object: a batch's acknowledgements share one ``now``.

    By identity, not equality: equal instants in other zones are equal datetimes but other text.
    """
    global _LAST_DATE
    last = _LAST_DATE
    if last[0] is not date:
        last = _LAST_DATE = (date, format_datetime(date))
    return last[1]


def _body(text: str, subtype: str, extra: str = "") -> str:
    """One text part, headers and body: 7bit or 8bit when every line fits (as ``email.contentmanager``),
    else the shorter of quoted-printable and base64 for the first ten lines, as it chooses too; the
    quoted-printable is ``binascii``'s (C, soft breaks at 76) rather than ``quoprimime``'s (Python, 78):
    the same text once decoded, a twentieth of the time."""
    lines = text.encode("utf-8").splitlines()
    normal = b"\n".join(lines) + b"\n"
    if max((len(line) for line in lines), default=0) <= MAX_LINE:
        cte = "7bit" if normal.isascii() else "8bit"
        payload = normal.decode("utf-8")
    else:
        sniff = b"\n".join(lines[:10]) + b"\n"
        if len(binascii.b2a_qp(sniff, istext=True)) > len(binascii.b2a_base64(sniff)):
            cte = "base64"
            step = MAX_LINE // 4 * 3
            payload = "".join(binascii.b2a_base64(normal[i:i + step]).decode("ascii")
                              for i in range(0, len(normal), step))
        else:
            cte = "quoted-printable"
            payload = binascii.b2a_qp(normal, istext=True).decode("ascii")
    if not payload.endswith("\n"):
        payload += "\n"
    payload = payload.replace("\n", _CRLF)
    return (f'Content-Type: text/{subtype}; charset="utf-8"{_CRLF}'
            f"Content-Transfer-Encoding: {cte}{_CRLF}{extra}{_CRLF}{payload}")


def plain_bytes(mail: OutgoingMail, *, sender_address: str, sender_name: str, message_id: str,
                date: datetime, rng: random.Random | None = None) -> bytes | None:
    """*mail* as SMTP bytes (CRLF), or None when it needs the general ``email`` machinery."""
    if mail.attachments or mail.extra_headers or mail.reply_to:
        return None
    try:
        to = ", ".join(clean_address(a) for a in mail.to)
    except ValueError:
        return None
    mid = clean_message_id(message_id)
    reply = clean_message_id(mail.in_reply_to) if mail.in_reply_to else None
    refs = list(dict.fromkeys(r for r in (clean_message_id(x) for x in mail.references if x) if r))
    if reply and reply not in refs:
        refs.append(reply)
    if mid is None or len(refs) > 20 or not mail.to:
        return None
    subject = " ".join(mail.subject.split())  # sanitize_header_text for printable input
    lines = [_header("To", to), _header("Subject", subject), _header("Date", _date_header(date)),
             _header("Message-ID", f"<{mid}>")]
    if reply:
        lines.append(_header("In-Reply-To", f"<{reply}>"))
    if refs:
        lines.append(_header("References", " ".join(f"<{r}>" for r in refs)))
    if any(line is None for line in lines):
        return None
    sender, constant = _constant_headers(sender_address, sender_name, mail.auto_submitted)
    head = sender + "".join(line for line in lines if line).encode("ascii") + constant
    if mail.html is None:  # set_content adds MIME-Version after the content headers
        single = _body(mail.text, "plain", "MIME-Version: 1.0" + _CRLF)
        return head + single.encode("utf-8")
    head += b"MIME-Version: 1.0\r\n"
    boundary = "=" * 15 + str((rng or random).randrange(sys.maxsize)).zfill(_TOKEN_WIDTH) + "=="
    # add_alternative gives the new part a MIME-Version of its own; kept, so the bytes are the stdlib's.
    parts = [_body(mail.text, "plain"), _body(mail.html, "html", "MIME-Version: 1.0" + _CRLF)]
    if any(f"--{boundary}" in part for part in parts):
        return None
    text = (f'Content-Type: multipart/alternative;{_CRLF} boundary="{boundary}"{_CRLF}{_CRLF}'
            + "".join(f"--{boundary}{_CRLF}{part}{_CRLF}" for part in parts) + f"--{boundary}--{_CRLF}")
    return head + text.encode("utf-8")


def smtp_bytes(mail: OutgoingMail, *, sender_address: str, sender_name: str, message_id: str,
               date: datetime) -> tuple[bytes, str]:
    """(the bytes to send, the Subject as sent): the plain path when it applies, else the ``email`` API."""
    data = plain_bytes(mail, sender_address=sender_address, sender_name=sender_name,
                       message_id=message_id, date=date)
    if data is not None:
        return data, " ".join(mail.subject.split())
    mime = build_mime(mail, sender_address=sender_address, sender_name=sender_name,
                      message_id=message_id, date=date)
    return as_smtp_bytes(mime), str(mime["Subject"])
