"""Generated hostile and broken mails: the classes of issue #12, shared by the tests and bench/hostile.py.

Why one module: the conformance tests feed these through every receiver and the benchmark times
them; both must talk about the same bytes.  Each generator returns raw bytes exactly as a careless
mail system or an attacker would send them (CRLF, 8-bit where the class needs it).
"""

from __future__ import annotations

import base64
from collections.abc import Callable


def _mail(headers: list[bytes], body: bytes, *, mid: str, sender: bytes = b"Bob Sender <bob@customer.example>",
          subject: bytes = b"Export fails") -> bytes:
    head = [b"From: " + sender, b"To: support@localhost", b"Subject: " + subject,
            b"Message-ID: <" + mid.encode() + b">", b"Date: Mon, 23 Nov 2026 09:00:00 +0000", *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


# --- poison values: one outcome each, never a blocked batch -----------------------------------------


def invalid_utf8_headers(tag: str = "p") -> bytes:
    """RFC 6532 style raw 8-bit headers with invalid sequences, a multibyte char split across encoded-words."""
    return (b"From: =?utf-8?q?Bj=C3?= =?utf-8?q?=B6rn?= \xff\xfe M\xc3ller <bjorn@customer.example>\r\n"
            b"To: support@localhost\r\n"
            b"Subject: Caf\xc3 =?utf-8?b?w6k=?= \xed\xa0\x80 broken \xc3\x28\r\n"
            b"Message-ID: <" + tag.encode() + b"-8bit.\xc3\xa9\xff@customer.example>\r\n"
            b"In-Reply-To: <\xff\xfe@elsewhere.example>\r\n"
            b"References: <\xfe\xff@elsewhere.example>\r\n\r\n"
            b"The export \xff\xfe fails \xed\xa0\x80 again.\r\n")


def nul_bytes(tag: str = "p") -> bytes:
    return _mail([b"X-Note: a\x00b"], b"Body with a NUL \x00 in the middle.\r\n", mid=f"{tag}-nul@customer.example",
                 sender=b"=?utf-8?q?Nul=00Name?= <nul@customer.example>", subject=b"NUL\x00 in subject")


def long_display_name(tag: str = "p") -> bytes:
    return _mail([], b"Long name.\r\n", mid=f"{tag}-longname@customer.example",
                 sender=b'"' + b"A" * 5000 + b'" <longname@customer.example>')


def long_address(tag: str = "p") -> bytes:
    return _mail([], b"Long address.\r\n", mid=f"{tag}-longaddr@customer.example",
                 sender=b"x" * 600 + b"@customer.example")


def long_message_id(tag: str = "p") -> bytes:
    return _mail([b"In-Reply-To: <" + b"r" * 3000 + b"@customer.example>"], b"Long ids.\r\n",
                 mid=tag + "-" + "m" * 3000 + "@customer.example")


POISON: dict[str, Callable[[str], bytes]] = {
    "invalid-utf8-headers": invalid_utf8_headers,
    "nul-bytes": nul_bytes,
    "long-display-name": long_display_name,
    "long-address": long_address,
    "long-message-id": long_message_id,
}


# --- resource bombs: bounded time and memory ----------------------------------------------------------


def encoded_word_subject(tag: str = "b", words: int = 30_000) -> bytes:
    """~0.5 MB Subject of RFC 2047 encoded-words (drove RSS to ~11 GB)."""
    subject = b" ".join(b"=?utf-8?q?a=C3=A9?=" for _ in range(words))
    return _mail([], b"Encoded-word bomb.\r\n", mid=f"{tag}-ew-subject@customer.example", subject=subject)


def encoded_word_header(tag: str = "b", words: int = 30_000) -> bytes:
    """The same bomb in another header (To display names) that guards and the classifier read."""
    value = b", ".join(b"=?utf-8?b?w6k=?= <a@b.example>" for _ in range(words // 10))
    keywords = b" ".join(b"=?utf-8?q?k=C3=A9?=" for _ in range(words))
    return _mail([b"Cc: " + value, b"Keywords: " + keywords, b"Thread-Topic: " + keywords],
                 b"Header bomb.\r\n", mid=f"{tag}-ew-header@customer.example")


def many_headers(tag: str = "b", count: int = 10_000) -> bytes:
    return _mail([b"X-Filler-%d: value %d" % (i, i) for i in range(count)], b"Many headers.\r\n",
                 mid=f"{tag}-many-headers@customer.example")


def huge_header_block(tag: str = "b", size: int = 2_000_000) -> bytes:
    return _mail([b"X-Big: " + b"y" * size], b"Huge header.\r\n", mid=f"{tag}-huge-header@customer.example")


def punycode_body(tag: str = "b", size: int = 850_000) -> bytes:
    return _mail([b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=punycode"], b"a" * size + b"-\r\n",
                 mid=f"{tag}-punycode@customer.example")


def long_subject(tag: str = "b", size: int = 78_000) -> bytes:
    """A 78 KB plain subject: every outgoing mail about the ticket folds it."""
    return _mail([], b"Long subject.\r\n", mid=f"{tag}-long-subject@customer.example",
                 subject=b"word " * (size // 5))


def deep_mime(tag: str = "b", depth: int = 2_000) -> bytes:
    head = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(depth))
    body = head + b"--b%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n" % depth
    return _mail([b"MIME-Version: 1.0", b"Content-Type: multipart/mixed; boundary=b0"], body,
                 mid=f"{tag}-deep-mime@customer.example")


def many_parts(tag: str = "b", parts: int = 20_000) -> bytes:
    body = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(parts)) + b"--p--\r\n"
    return _mail([b"MIME-Version: 1.0", b"Content-Type: multipart/mixed; boundary=p"], body,
                 mid=f"{tag}-many-parts@customer.example")


def big_attachment(tag: str = "b", size: int = 47 * 1024 * 1024) -> bytes:
    """A 47 MB mail: one base64 attachment (memory should stay within a small multiple of the size)."""
    payload = base64.encodebytes(b"\x00\x01binary" * (size * 3 // 4 // 8))
    body = (b"--x\r\nContent-Type: text/plain\r\n\r\nSee the log.\r\n--x\r\n"
            b"Content-Type: application/octet-stream; name=log.bin\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=log.bin\r\n\r\n" + payload + b"--x--\r\n")
    return _mail([b"MIME-Version: 1.0", b"Content-Type: multipart/mixed; boundary=x"], body,
                 mid=f"{tag}-big@customer.example")


def big_attachments(tag: str = "b", size: int = 47 * 1024 * 1024, parts: int = 5) -> bytes:
    """A 47 MB mail of *parts* base64 attachments, each under the 10 MiB cap (so all are stored), CRLF
    throughout as an MTA hands it over: the stdlib parser alone took seconds to split it into lines."""
    each = size * 3 // 4 // parts
    body = b"--x\r\nContent-Type: text/plain\r\n\r\nSee the logs.\r\n"
    for index in range(parts):
        payload = base64.encodebytes(bytes([index]) + b"\x00\x01binary" * (each // 8)).replace(b"\n", b"\r\n")
        body += (b"--x\r\nContent-Type: application/octet-stream; name=log%d.bin\r\n"
                 b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=log%d.bin\r\n\r\n"
                 % (index, index)) + payload
    return _mail([b"MIME-Version: 1.0", b"Content-Type: multipart/mixed; boundary=x"], body + b"--x--\r\n",
                 mid=f"{tag}-big-parts@customer.example")


def long_word_bounce(tag: str = "b", size: int = 200_000) -> bytes:
    """A bounce-looking mail whose body is one 200 KB word: address regexes must stay linear on it."""
    return _mail([b"X-Failed-Recipients: " + b"a" * 5000], b"Undeliverable " + b"x" * size + b"\r\n",
                 mid=f"{tag}-long-word@customer.example", sender=b"MAILER-DAEMON@mx.customer.example",
                 subject=b"Undeliverable: " + b"y" * 900)


BOMBS: dict[str, Callable[[str], bytes]] = {
    "encoded-word-subject": encoded_word_subject,
    "encoded-word-header": encoded_word_header,
    "many-headers": many_headers,
    "huge-header-block": huge_header_block,
    "punycode-body": punycode_body,
    "long-subject": long_subject,
    "deep-mime": deep_mime,
    "many-parts": many_parts,
    "long-word-bounce": long_word_bounce,
}
