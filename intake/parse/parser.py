"""Raw bytes -> ``ParsedMessage``: the one place that knows email's decoding quirks.

Why so defensive: a support address receives whatever the internet sends. Peers lose
or corrupt such mail (raw bytes decoded as UTF-8, out-of-office replies answered, one
malformed message blocking a mailbox). Here every header and body is decoded
best-effort (declared charset, then UTF-8, then windows-1252, replacement characters
last, each fallback recorded in ``notes``), and the only exception that ever leaves
``parse_message`` is ``UnparseableMessage`` with a one-line reason for quarantine.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.generator import BytesGenerator
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from io import BytesIO

import html2text

from core.email_headers import CachingPolicy
from intake.parse import quotes
from intake.parse.message import ParsedAttachment, ParsedMessage, UnparseableMessage

MAX_DEPTH = 40  # MIME nesting beyond this is ignored (and noted): defends against "endless nesting" bombs
SYNTHETIC_DOMAIN = "hypercare.invalid"

# Declared names that lie or that Python does not know, mapped to the codec real mail means by them.
_CHARSET_ALIASES = {
    "iso-8859-1": "windows-1252", "iso8859-1": "windows-1252", "latin1": "windows-1252",
    "latin-1": "windows-1252", "us-ascii": "windows-1252", "ascii": "windows-1252",
    "iso-8859-8-i": "iso-8859-8", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "shift_jis": "cp932", "x-sjis": "cp932",
    "sjis": "cp932", "iso-2022-jp": "iso2022_jp_ext", "big5": "big5hkscs", "windows-874": "cp874",
    "x-mac-roman": "mac_roman", "macintosh": "mac_roman", "utf8": "utf-8", "unicode-1-1-utf-7": "utf-7",
}
_UNKNOWN_CHARSETS = {"", "x-unknown", "unknown", "unknown-8bit", "default", "x-user-defined", "charset"}
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_MSGID = re.compile(r"<([^<>\s]+)>")
_UNQUOTED_NAME = re.compile(r"\b(?:file)?name\s*=\s*([^\";\s][^;\n]*)", re.I)
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]+')


def parse_message(raw: bytes, *, max_attachment_bytes: int = 10 * 1024 * 1024) -> ParsedMessage:
    """Decode *raw*; raise only ``UnparseableMessage`` (the reason is shown in quarantine)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise UnparseableMessage(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    try:
        return _parse(raw, max_attachment_bytes)
    except UnparseableMessage:
        raise
    except RecursionError:
        raise UnparseableMessage("MIME structure nested too deeply to read") from None
    except MemoryError:
        raise UnparseableMessage("message too large to parse in memory") from None
    except Exception as exc:  # noqa: BLE001 - the contract: quarantine with a reason, never crash ingest
        raise UnparseableMessage(f"parser failed: {exc.__class__.__name__}: {str(exc)[:200]}") from None


def normalize_newlines(raw: bytes) -> bytes:
    """CRLF and bare CR become LF: corpus mail is stored CRLF, LF and CR-only alike."""
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _parse(raw: bytes, cap: int) -> ParsedMessage:
    normalized = normalize_newlines(raw)
    if not normalized.strip():
        raise UnparseableMessage("empty message")
    content_hash = hashlib.sha256(normalized).hexdigest()
    notes: list[str] = []
    msg = BytesParser(policy=CachingPolicy(CachingPolicy.SHARED_CACHE)).parsebytes(_repair(normalized, notes))
    if not msg.keys():
        raise UnparseableMessage("no mail headers found (not an RFC 5322 message)")
    mid = _first_id(_raw_header(msg, "message-id"))
    from_name, from_addr = next(iter(_addresses(msg, "from", notes)), ("", ""))
    parsed = ParsedMessage(
        raw=raw,
        message_id=mid or f"nomid.{content_hash}@{SYNTHETIC_DOMAIN}",
        has_message_id=bool(mid),
        content_hash=content_hash,
        subject=" ".join(decode_text_header(_raw_header(msg, "subject"), notes).split()),
        from_addr=from_addr,
        from_name=from_name,
        to=[a for _, a in _addresses(msg, "to", notes)],
        cc=[a for _, a in _addresses(msg, "cc", notes)],
        reply_to=[a for _, a in _addresses(msg, "reply-to", notes)],
        date=_date(_raw_header(msg, "date"), notes),
        in_reply_to=_first_id(_raw_header(msg, "in-reply-to")) or None,
        references=_MSGID.findall(_raw_header(msg, "references")),
        notes=notes,
        msg=msg,
    )
    _fill_body_and_attachments(parsed, msg, cap)
    parsed.body = quotes.trim_reply(parsed.body_full)
    return parsed


_OBS_HEADER = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.M)


def _repair(data: bytes, notes: list[str]) -> bytes:
    """Fix what real mailers get wrong before the header block (the stored raw stays untouched):
    a UTF-8 BOM, blank lines before the headers, and obsolete "Name  : value" syntax (RFC 5322 4.5)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        notes.append("byte-order mark before the headers ignored")
    stripped = data.lstrip(b" \t\n")
    if stripped is not data and len(stripped) != len(data):
        notes.append("blank lines before the headers ignored")
        data = stripped
    head, sep, rest = data.partition(b"\n\n")
    fixed = _OBS_HEADER.sub(rb"\1:", head)
    if fixed != head:
        notes.append("obsolete header syntax (space before colon) accepted")
        data = fixed + sep + rest
    return data


# --- headers ---------------------------------------------------------------------------------


def _raw_header(msg: Message, name: str) -> str:
    """The first raw (undecoded, unfolded) value of *name*; "" when absent."""
    for key, value in msg.raw_items():
        if key.lower() == name:
            return re.sub(r"\r?\n[ \t]+", " ", str(value)).strip()
    return ""


def _first_id(value: str) -> str:
    match = _MSGID.search(value)
    if match:
        return match.group(1)
    token = value.strip().split()[0] if value.strip() else ""
    return token.strip("<>") if "@" in token else ""


def decode_text_header(value: str, notes: list[str]) -> str:
    """RFC 2047 words and raw 8-bit bytes (surrogate-escaped by the parser) to text, best effort."""
    if not value:
        return ""
    if "\x1b" in value:  # raw ISO-2022-JP in a header, as Japanese mailers still send
        value = _decode_bytes(value.encode("ascii", "surrogateescape"), "iso-2022-jp", notes, "header")
    if not _ENCODED_WORD.search(value):
        return _unescape(value, notes)
    pieces: list[str] = []
    try:
        chunks = decode_header(value)
    except Exception:  # noqa: BLE001 - malformed encoded words: keep the literal text
        return _unescape(value, notes)
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            pieces.append(_unescape(chunk, notes))
        else:
            data = chunk.decode("ascii", "surrogateescape").encode("ascii", "surrogateescape")
            pieces.append(_decode_bytes(data, charset, notes, "header"))
    return "".join(pieces)


def _unescape(text: str, notes: list[str]) -> str:
    """Undo the parser's surrogate escapes of 8-bit header bytes (RFC 6532 UTF-8 or legacy)."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    return _decode_bytes(text.encode("utf-8", "surrogateescape"), None, notes, "header")


def _addresses(msg: Message, name: str, notes: list[str]) -> list[tuple[str, str]]:
    values = [re.sub(r"\r?\n[ \t]+", " ", str(v)) for k, v in msg.raw_items() if k.lower() == name]
    if not values:
        return []
    try:
        pairs = getaddresses(values)
    except Exception:  # noqa: BLE001
        pairs = []
    result: list[tuple[str, str]] = []
    for display, address in pairs:
        address = _unescape(address, notes).strip().strip("<>").lower()
        if not address:
            continue
        result.append((" ".join(decode_text_header(display, notes).split()), address))
    if not result or (any("@" not in a for _, a in result) and any("@" in v for v in values)):
        result = []  # getaddresses gave up on a malformed list: salvage what looks like addresses
        for text in values:
            for found in re.findall(r"[\w.!#$%&'*+/=?^`{|}~\\-]+@[\w.-]+", _unescape(text, notes)):
                result.append(("", found.lower()))
    return result


def _date(value: str, notes: list[str]) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        notes.append(f"unreadable Date header {value[:60]!r}")
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- charsets --------------------------------------------------------------------------------


def _codec(charset: str | None) -> str | None:
    name = (charset or "").strip().strip("\"'").lower()
    if name in _UNKNOWN_CHARSETS:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        "".encode(name)
        b"".decode(name)
    except (LookupError, TypeError, ValueError):
        return None
    return name


def _decode_bytes(data: bytes, charset: str | None, notes: list[str], where: str) -> str:
    """Declared charset, else UTF-8, else windows-1252; replacement characters only as last resort."""
    codec = _codec(charset)
    if codec is None and charset and charset.strip().lower() not in _UNKNOWN_CHARSETS:
        notes.append(f"{where}: unknown charset {charset[:40]!r} decoded best-effort")
    tried: list[str] = []
    for candidate in (codec, "utf-8", "windows-1252"):
        if candidate is None or candidate in tried:
            continue
        tried.append(candidate)
        try:
            text = data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
        if candidate != tried[0] and data.isascii() is False:
            notes.append(f"{where}: charset {charset or 'undeclared'!s} did not fit; decoded as {candidate}")
        return text
    notes.append(f"{where}: charset {charset or 'undeclared'!s} undecodable; replacement characters used")
    return data.decode(codec or "utf-8", errors="replace")


# --- body and attachments --------------------------------------------------------------------


def _leaves(msg: Message, notes: list[str]) -> Iterator[Message]:
    """Leaf parts in document order, attached messages as one leaf; iterative and depth-capped."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_DEPTH:
            notes.append(f"MIME nesting deeper than {MAX_DEPTH} ignored")
            continue
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            if part.get_content_maintype() == "message" and depth > 0:
                yield part  # message/rfc822 & co: one attachment, not body text
                continue
            stack.extend((sub, depth + 1) for sub in reversed(payload) if isinstance(sub, Message))
        else:
            yield part


def _fill_body_and_attachments(parsed: ParsedMessage, msg: Message, cap: int) -> None:
    plain: list[str] = []
    html: list[str] = []
    for part in _leaves(msg, parsed.notes):
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        filename = _filename(part, parsed.notes)
        is_text_body = ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename
        if ctype.startswith("multipart/") and not filename:
            parsed.notes.append(f"{ctype} without readable parts read as plain text")
            ctype, is_text_body = "text/plain", True
        if is_text_body or (part is msg and part.get_content_maintype() == "text"):
            text = _part_text(part, parsed.notes)
            (html if ctype == "text/html" else plain).append(text)
            continue
        payload = _part_bytes(part)
        parsed.attachments.append(_attachment(part, payload, filename, cap, parsed.notes))
    body = "\n\n".join(t.strip("\n") for t in plain if t.strip())
    if not body:
        body = "\n\n".join(html_to_text(t) for t in html if t.strip())
    parsed.body_full = body


def _part_text(part: Message, notes: list[str]) -> str:
    data = _part_bytes(part)
    return _decode_bytes(data, part.get_content_charset(), notes, "body").replace("\r\n", "\n")


def _part_bytes(part: Message) -> bytes:
    """Decoded payload (base64/QP/uuencode); attached messages serialized; never raises."""
    try:
        if part.is_multipart():
            buffer = BytesIO()
            for sub in part.get_payload():
                BytesGenerator(buffer, mangle_from_=False, policy=policy.compat32).flatten(sub)
            return buffer.getvalue()
        data = part.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""
    except Exception:  # noqa: BLE001 - a broken part must not lose the rest of the mail
        raw = part.get_payload()
        return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _filename(part: Message, notes: list[str]) -> str:
    try:
        name = part.get_filename() or ""
    except Exception:  # noqa: BLE001 - malformed RFC 2231 parameters
        name = ""
    if not name:
        try:
            name = str(part.get_param("name", "", header="content-type") or "")
        except Exception:  # noqa: BLE001
            name = ""
    for key, value in part.raw_items():
        unquoted = _UNQUOTED_NAME.search(re.sub(r"\n[ \t]+", " ", str(value)))
        if key.lower() not in ("content-disposition", "content-type") or not unquoted:
            continue
        # name=This is a.txt / name==?utf-8?B?...?= : the stdlib keeps only the first token
        candidate = unquoted.group(1).strip()
        if not name or candidate.startswith("=?") or (len(candidate) > len(name) and candidate.startswith(name)):
            name = candidate
            break
    return decode_text_header(str(name), notes) if name else ""


def safe_filename(name: str, content_type: str) -> str:
    """No directories, no control or shell-hostile characters, bounded length, never empty."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", name).strip(" .")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 190] + dot + ext[:9]) if dot and len(ext) < 10 else name[:200]
    if not name:
        guessed = mimetypes.guess_extension(content_type) or ".bin"
        name = "attachment" + (".eml" if content_type == "message/rfc822" else guessed)
    return name


def _attachment(part: Message, payload: bytes, filename: str, cap: int, notes: list[str]) -> ParsedAttachment:
    ctype = part.get_content_type()
    name = safe_filename(filename, ctype)
    over = len(payload) > cap
    if over:
        notes.append(f"attachment {name!r} omitted: {len(payload)} bytes over the {cap}-byte cap")
    return ParsedAttachment(
        filename=name,
        content_type=ctype,
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        payload=None if over else payload,
    )


def html_to_text(html: str) -> str:
    """Readable text from HTML-only mail; scripts, styles and images dropped, no hard wrapping."""
    html = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", html)
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    try:
        text = converter.handle(html)
    except Exception:  # noqa: BLE001 - html2text on pathological markup: fall back to tag stripping
        text = re.sub(r"<[^>]+>", " ", html)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
