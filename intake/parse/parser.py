"""Raw bytes -> ``ParsedMessage``: the one place that knows email's decoding quirks.

Why so defensive: a support address receives whatever the internet sends. Peers lose
or corrupt such mail (raw bytes decoded as UTF-8, out-of-office replies answered, one
malformed message blocking a mailbox). Here every header and body is decoded
best-effort (declared charset, then UTF-8, then windows-1252, replacement characters
last, each fallback recorded in ``notes``), and the only exception that ever leaves
``parse_message`` is ``UnparseableMessage`` with a one-line reason for quarantine.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import hashlib
import itertools
import mimetypes
import re
import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.generator import BytesGenerator
from email.header import decode_header
from email.message import Message
from email.parser import BytesFeedParser
from email.utils import getaddresses, parsedate_to_datetime
from io import BytesIO

import html2text

from config import IntakeSettings
from core.email_headers import CachingPolicy
from intake.parse import quotes
from intake.parse.identity import judge_from
from intake.parse.message import ParsedAttachment, ParsedMessage, UnparseableMessage

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
_MAIL_CODECS = frozenset(codecs.lookup(name).name for name in (
    "utf-8", "utf-7", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "ascii",
    *(f"iso-8859-{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
    *(f"windows-{n}" for n in range(1250, 1259)), "cp437", "cp850", "cp852", "cp866", "cp874", "cp932",
    "cp949", "cp950", "koi8-r", "koi8-u", "mac_roman", "mac_cyrillic", "gb18030", "gb2312", "gbk", "hz",
    "big5", "big5hkscs", "euc-jp", "euc-kr", "shift_jis", "iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2",
    "iso2022_kr", "tis-620", "johab"))
_UNKNOWN_CHARSETS = {"", "x-unknown", "unknown", "unknown-8bit", "default", "x-user-defined", "charset"}
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_MSGID = re.compile(r"<([^<>\s]+)>")
_UNQUOTED_NAME = re.compile(r"\b(?:file)?name\s*=\s*([^\";\s][^;\n]*)", re.I)
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]+')


def parse_message(raw: bytes, *, max_attachment_bytes: int | None = None,
                  limits: IntakeSettings | None = None) -> ParsedMessage:
    """Decode *raw* within *limits* ([intake], the defaults when None); raise only ``UnparseableMessage``
    (the reason is shown in quarantine).  *max_attachment_bytes* overrides the limits' value."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise UnparseableMessage(f"expected bytes, got {type(raw).__name__}")
    limits = limits or IntakeSettings()
    if max_attachment_bytes is not None:
        limits = replace(limits, max_attachment_bytes=max_attachment_bytes)
    raw = bytes(raw)
    if len(raw) > limits.max_message_bytes:
        raise UnparseableMessage(f"message of {len(raw)} bytes is over [intake] max_message_bytes "
                                 f"({limits.max_message_bytes})")
    try:
        return _parse(raw, limits)
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
    if b"\r" not in raw:
        return raw
    raw = raw.replace(b"\r\n", b"\n")
    return raw.replace(b"\r", b"\n") if b"\r" in raw else raw


def _parse(raw: bytes, limits: IntakeSettings) -> ParsedMessage:
    normalized = normalize_newlines(raw)
    if not normalized or normalized.isspace():  # (not .strip(): that copies a 50 MB mail)
        raise UnparseableMessage("empty message")
    content_hash = hashlib.sha256(normalized).hexdigest()
    notes: list[str] = []
    data = _set_aside(_bound_headers(_repair(normalized, notes), limits, notes), limits.max_attachment_bytes)
    del normalized
    parts = len(_PART_HEADER.findall(data))
    if parts > limits.max_mime_parts:  # counted before the stdlib builds a tree of them (20,000 parts: 2 s)
        raise UnparseableMessage(f"{parts} MIME parts, over [intake] max_mime_parts ({limits.max_mime_parts})")
    msg = _feed(data)
    del data
    if not msg.keys():
        raise UnparseableMessage("no mail headers found (not an RFC 5322 message)")
    mid = _first_id(_raw_header(msg, "message-id"))
    from_name, from_addr, from_problem = judge_from(_raw_values(msg, "from", notes), _addresses(msg, "from", notes))
    if from_problem:
        notes.append(f"ambiguous From ({from_problem}): no authority; the sender is {from_addr}")
    parsed = ParsedMessage(
        raw=raw,
        message_id=mid or f"nomid.{content_hash}@{SYNTHETIC_DOMAIN}",
        has_message_id=bool(mid),
        content_hash=content_hash,
        subject=" ".join(decode_text_header(_raw_header(msg, "subject"), notes).split()),
        from_addr=from_addr,
        from_name=from_name,
        from_problem=from_problem,
        to=[a for _, a in _addresses(msg, "to", notes)],
        cc=[a for _, a in _addresses(msg, "cc", notes)],
        reply_to=[a for _, a in _addresses(msg, "reply-to", notes)],
        date=_date(_raw_header(msg, "date"), notes),
        in_reply_to=_first_id(_raw_header(msg, "in-reply-to")) or None,
        references=_MSGID.findall(_raw_header(msg, "references")),
        notes=notes,
        msg=msg,
    )
    _fill_body_and_attachments(parsed, msg, limits)
    parsed.body = quotes.trim_reply(parsed.body_full)
    return parsed


_OBS_HEADER = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.M)
_FIELD_START = re.compile(rb"\n(?![ \t])")
_PART_HEADER = re.compile(rb"^content-type:", re.I | re.M)
_WORD_CHARSET = re.compile(rb"=\?([^?\s*]+)(\*[^?\s]*)?\?([bBqQ])\?")
_CHUNK = 1 << 20


_ASIDE = b"hypercare-set-aside-" + secrets.token_hex(8).encode()  # per process: no mail can forge it
_BASE64_VALUE = re.compile(rb"[ \t]*base64[ \t]*\n", re.I)


def _set_aside(data: bytes, cap: int) -> bytes:
    """Base64 bodies too big to keep are measured here and replaced by one marker line before parsing.

    Why: the stdlib keeps every line of a part as a str object and then joins them, so a 47 MB mail
    cost ~9x its size; an attachment over ``max_attachment_bytes`` is recorded only by name, size and
    SHA-256 anyway, so its bytes need never enter the parser (``_set_aside_attachment`` reads the marker).
    """
    if len(data) <= cap:
        return data
    pieces: list[bytes] = []
    last = 0
    for header_end in _base64_headers(data):
        start = data.find(b"\n\n", header_end)
        if start < 0:
            break
        start += 2
        end = data.find(b"\n--", start)  # the next boundary line: "-" is not in the base64 alphabet
        end = len(data) if end < 0 else end + 1
        if start < last or end - start <= cap * 4 // 3:
            continue
        size, digest = _measure_base64(memoryview(data)[start:end])
        pieces += [data[last:start], b"%s %d %s\n" % (_ASIDE, size, digest.encode())]
        last = end
    if not pieces:
        return data
    pieces.append(data[last:])
    return b"".join(pieces)


def _base64_headers(data: bytes) -> Iterator[int]:
    """Where each "Content-Transfer-Encoding: base64" line ends: found by ``bytes.find`` on "ncoding:" (a
    case-insensitive regex over 50 MB took 1.4 s; ":" never occurs inside base64, so hits are few)."""
    name = b"content-transfer-encoding:"
    position = data.find(b"ncoding:")
    while position >= 0:
        start = position + len(b"ncoding:") - len(name)
        line_start = start == 0 or data[start - 1:start] == b"\n"
        if start >= 0 and line_start and data[start:start + len(name)].lower() == name:
            value = _BASE64_VALUE.match(data, start + len(name))
            if value:
                yield value.end()
        position = data.find(b"ncoding:", position + 1)


def _measure_base64(view: memoryview) -> tuple[int, str]:
    """Decoded size and SHA-256 of base64 lines, 1 MB at a time (never the whole payload in memory)."""
    digest, size, carry = hashlib.sha256(), 0, b""
    for start in range(0, len(view), _CHUNK):
        text = carry + bytes(view[start:start + _CHUNK]).translate(None, b"\r\n")
        whole = len(text) - len(text) % 4
        chunk = binascii.a2b_base64(text[:whole])
        digest.update(chunk)
        size += len(chunk)
        carry = text[whole:]
    if carry.strip(b"="):
        chunk = binascii.a2b_base64(carry + b"=" * (-len(carry) % 4))
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _set_aside_attachment(part: Message, filename: str, notes: list[str]) -> ParsedAttachment | None:
    """The attachment ``_set_aside`` measured (payload not kept), or None for any other part."""
    payload = part.get_payload()
    if not isinstance(payload, str) or not payload.startswith(_ASIDE.decode()):
        return None
    _mark, size, digest = payload.split()[:3]
    name = safe_filename(filename, part.get_content_type())
    notes.append(f"attachment {name!r} omitted: {size} bytes over the [intake] max_attachment_bytes cap")
    return ParsedAttachment(filename=name, content_type=part.get_content_type(), size=int(size), sha256=digest,
                            payload=None)


def _feed(data: bytes) -> Message:
    """Parse in 1 MB slices: ``parsebytes`` decodes the whole mail to one str and copies it into a
    StringIO (4 bytes per character), which made a 47 MB mail cost ~10x its size."""
    parser = BytesFeedParser(policy=CachingPolicy(CachingPolicy.SHARED_CACHE))
    for start in range(0, len(data), _CHUNK):
        parser.feed(data[start:start + _CHUNK])
    return parser.close()


def _bound_headers(data: bytes, limits: IntakeSettings, notes: list[str]) -> bytes:
    """Hold the header block to [intake] limits in one pass, before the stdlib parses it.

    Why before: the stdlib's header parsing is superlinear in encoded-words (a 0.5 MB Subject of them
    drove RSS to 11 GB) and every later ``get`` scans all fields.  What is cut is noted; the stored raw
    bytes stay untouched.  Encoded-words naming a charset that is not a mail charset are renamed
    ``unknown-8bit`` so no stage ever runs an arbitrary Python codec (punycode: 17 s) on them.
    """
    end = data.find(b"\n\n")
    head = data if end < 0 else data[:end]
    if len(head) <= min(4096, limits.max_header_field_bytes) and b"=?" not in head \
            and head.count(b"\n") < limits.max_headers:
        return data  # the common mail: nothing to hold
    fields: list[bytes] = []
    size = 0
    changed = False
    for field in _FIELD_START.split(head):
        if len(fields) >= limits.max_headers:
            notes.append(f"more than {limits.max_headers} header fields: the rest ignored ([intake] max_headers)")
            changed = True
            break
        if len(field) > limits.max_header_field_bytes:
            notes.append(f"{field[:40].split(b':', 1)[0].decode('ascii', 'replace')}: over "
                         f"{limits.max_header_field_bytes} bytes, the rest ignored ([intake] max_header_field_bytes)")
            field, changed = field[:limits.max_header_field_bytes].rstrip(b"\n\t "), True
        if size + len(field) + 1 > limits.max_header_bytes:
            notes.append(f"header block over {limits.max_header_bytes} bytes: the rest ignored "
                         "([intake] max_header_bytes)")
            changed = True
            break
        if b"=?" in field:
            bounded = _bound_words(field, limits.max_encoded_words, notes)
            changed = changed or bounded is not field
            field = bounded
        fields.append(field)
        size += len(field) + 1
    if not changed:
        return data
    return b"\n".join(fields) + (b"" if end < 0 else data[end:])


def _bound_words(field: bytes, limit: int, notes: list[str]) -> bytes:
    """At most *limit* encoded-words in one field, each naming a mail charset."""
    name = field.split(b":", 1)[0][:40].decode("ascii", "replace")
    words = list(itertools.islice(_WORD_CHARSET.finditer(field), limit + 1))
    if len(words) > limit:
        field = field[:words[limit].start()].rstrip(b"\n\t ")
        notes.append(f"{name}: more than {limit} encoded-words, the rest ignored ([intake] max_encoded_words)")
    if all(_codec(w.group(1).decode("ascii", "replace")) or _unknown(w.group(1)) for w in words[:limit]):
        return field

    def rename(word: re.Match[bytes]) -> bytes:
        charset = word.group(1).decode("ascii", "replace")
        if _codec(charset) or _unknown(word.group(1)):
            return word.group(0)
        notes.append(f"{name}: charset {charset[:40]!r} is not a mail charset; read as unknown-8bit")
        return b"=?unknown-8bit" + (word.group(2) or b"") + b"?" + word.group(3) + b"?"

    return _WORD_CHARSET.sub(rename, field)


def _unknown(charset: bytes) -> bool:
    return charset.decode("ascii", "replace").strip().lower() in _UNKNOWN_CHARSETS


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
    end = data.find(b"\n\n")
    head = data if end < 0 else data[:end]  # never a copy of the body: it may be 50 MB
    fixed = _OBS_HEADER.sub(rb"\1:", head)
    if fixed != head:
        notes.append("obsolete header syntax (space before colon) accepted")
        data = fixed + (b"" if end < 0 else data[end:])
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


def _raw_values(msg: Message, name: str, notes: list[str]) -> list[str]:
    """Every value of header *name*, unfolded, 8-bit bytes decoded (encoded-words left as they are)."""
    return [_unescape(re.sub(r"\r?\n[ \t]+", " ", str(v)), notes) for k, v in msg.raw_items() if k.lower() == name]


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
            for found in re.findall(r"(?<![\w.!#$%&'*+/=?^`{|}~\\-])[\w.!#$%&'*+/=?^`{|}~\\-]+@[\w.-]+",
                                    _unescape(text, notes)):
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


@functools.lru_cache(maxsize=256)
def _codec(charset: str | None) -> str | None:
    """The Python codec for a declared mail charset, or None: only real mail charsets are decoded.

    Why an allow-list: any Python codec name used to be accepted (``punycode`` on an 850 KB body took
    17 s; ``zlib``/``base64`` are not even text).  Unknown names fall back to the safe decode and a note.
    """
    name = (charset or "").strip().strip("\"'").lower()
    if name in _UNKNOWN_CHARSETS:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        canonical = codecs.lookup(name).name
    except (LookupError, TypeError, ValueError):
        return None
    return name if canonical in _MAIL_CODECS else None


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
        except (UnicodeError, LookupError):
            continue
        if candidate != tried[0] and data.isascii() is False:
            notes.append(f"{where}: charset {charset or 'undeclared'!s} did not fit; decoded as {candidate}")
        return text
    notes.append(f"{where}: charset {charset or 'undeclared'!s} undecodable; replacement characters used")
    return data.decode(codec or "utf-8", errors="replace")


# --- body and attachments --------------------------------------------------------------------


def _leaves(msg: Message, notes: list[str], limits: IntakeSettings) -> Iterator[Message]:
    """Leaf parts in document order, attached messages as one leaf; iterative, depth- and count-capped."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    leaves = 0
    while stack:
        part, depth = stack.pop()
        if depth > limits.max_mime_depth:
            notes.append(f"MIME nesting deeper than {limits.max_mime_depth} ignored ([intake] max_mime_depth)")
            continue
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            if part.get_content_maintype() == "message" and depth > 0:
                yield part  # message/rfc822 & co: one attachment, not body text
                continue
            stack.extend((sub, depth + 1) for sub in reversed(payload) if isinstance(sub, Message))
            continue
        leaves += 1
        if leaves > limits.max_mime_parts:
            notes.append(f"more than {limits.max_mime_parts} MIME parts: the rest ignored ([intake] max_mime_parts)")
            return
        yield part


def _fill_body_and_attachments(parsed: ParsedMessage, msg: Message, limits: IntakeSettings) -> None:
    cap = limits.max_attachment_bytes
    plain: list[str] = []
    html: list[str] = []
    for part in _leaves(msg, parsed.notes, limits):
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
        aside = _set_aside_attachment(part, filename, parsed.notes)
        if aside is not None:
            parsed.attachments.append(aside)
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
