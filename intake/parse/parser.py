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
from dataclasses import dataclass, replace
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
    if not raw or raw.isspace():  # (not .strip(): that copies a 50 MB mail)
        raise UnparseableMessage("empty message")
    content = hashlib.sha256()
    normalized, set_aside = _set_aside(raw, limits.max_attachment_bytes, content)
    content_hash = content.hexdigest()
    notes: list[str] = []
    data = _bound_headers(_repair(normalized, notes), limits, notes)
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
    _fill_body_and_attachments(parsed, msg, limits, set_aside)
    parsed.body = quotes.trim_reply(parsed.body_full)
    return parsed


_OBS_HEADER = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.M)
_FIELD_START = re.compile(rb"\n(?![ \t])")
_PART_HEADER = re.compile(rb"^content-type:", re.I | re.M)
_WORD_CHARSET = re.compile(rb"=\?([^?\s*]+)(\*[^?\s]*)?\?([bBqQ])\?")
_CHUNK = 1 << 20


_ASIDE = b"hypercare-set-aside-" + secrets.token_hex(8).encode()  # per process: no mail can forge it
_ASIDE_MIN = 256 * 1024  # encoded bytes: smaller base64 bodies go through the stdlib parser like the rest
_BASE64_VALUE = re.compile(rb"[ \t]*base64[ \t]*\r?\n", re.I)
_BLANK_LINE = re.compile(rb"\n\r?\n")
_NOT_BASE64 = bytes(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))


@dataclass(frozen=True)
class _SetAside:
    """A base64 body decoded before parsing: its size, SHA-256 and, within the cap, its bytes."""

    size: int
    sha256: str
    payload: bytes | None  # None when over max_attachment_bytes (measured, not kept)


def _set_aside(raw: bytes, cap: int, content: hashlib._Hash) -> tuple[bytes, list[_SetAside]]:
    """The mail with newlines normalised and every big base64 body replaced by one marker line, the
    bodies decoded once; *content* is fed the normalised mail (the content hash) on the way.

    Why: the stdlib keeps every line of a part as a str object and decodes the part again on each
    ``get_payload(decode=True)``, so a 47 MB mail of attachments cost ~9x its size and seconds of
    line-by-line parsing; and a normalised copy of the whole mail was made only to hash it.  Here a
    big base64 body is read 1 MB at a time: normalised and hashed for the content hash, decoded,
    its SHA-256 computed and, within ``max_attachment_bytes``, its bytes kept for the attachment
    store (``_aside_of`` finds them again by the marker).  Newlines are normalised per piece, each
    cut right after a LF, so the content hash is the one of ``normalize_newlines(raw)``.
    """
    pieces: list[bytes] = []
    set_aside: list[_SetAside] = []
    last = 0
    for start, end in _base64_bodies(raw) if len(raw) > _ASIDE_MIN else ():
        if end - start <= _ASIDE_MIN:
            continue
        pieces.append(normalize_newlines(raw[last:start]))
        content.update(pieces[-1])
        set_aside.append(_read_base64(memoryview(raw)[start:end], cap, content))
        pieces.append(b"%s %d\n" % (_ASIDE, len(set_aside) - 1))
        last = end
    rest = normalize_newlines(raw[last:] if last else raw)
    content.update(rest)
    if not pieces:
        return rest, []
    pieces.append(rest)
    return b"".join(pieces), set_aside


def _base64_bodies(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each base64 body: from the blank line after a "Content-Transfer-Encoding: base64"
    header to the next line starting with "--" ("-" is not in the base64 alphabet).

    Found by ``bytes.find`` on "ncoding:" (a case-insensitive regex over 50 MB took 1.4 s; ":" never
    occurs inside base64, so hits are few); each search resumes after the body it found, so the
    payloads are not scanned twice and many headers cannot make it quadratic.
    """
    name = b"content-transfer-encoding:"
    position = data.find(b"ncoding:")
    while position >= 0:
        resume = position + 1
        start = position + len(b"ncoding:") - len(name)
        line_start = start == 0 or data[start - 1:start] == b"\n"
        value = _BASE64_VALUE.match(data, start + len(name)) if start >= 0 and line_start and \
            data[start:start + len(name)].lower() == name else None
        if value:
            blank = _BLANK_LINE.search(data, value.end() - 1)
            if blank is None:
                return
            end = _next_boundary_line(data, blank.end())
            yield blank.end(), end
            resume = max(resume, end)
        position = data.find(b"ncoding:", resume)


def _next_boundary_line(data: bytes, body: int) -> int:
    """Where the first line starting with "--" at or after *body* begins (the end of the data if none).

    The first "-" (memchr: milliseconds for 50 MB) is the boundary in well-formed base64; only when it
    is not does the slower search for "LF--" run, from there.
    """
    dash = data.find(b"-", body)
    if dash >= 0 and not (data[dash - 1:dash] == b"\n" and data[dash + 1:dash + 2] == b"-"):
        dash = data.find(b"\n--", dash)
        dash = dash + 1 if dash >= 0 else -1
    return len(data) if dash < 0 else dash


def _read_base64(view: memoryview, cap: int, content: hashlib._Hash) -> _SetAside:
    """Decode base64 lines 1 MB at a time: *content* gets the normalised text, the SHA-256 and size are
    of the decoded bytes, which are kept only while within *cap* (never twice the payload in memory)."""
    digest, size, carry = hashlib.sha256(), 0, b""
    kept: list[bytes] | None = []
    position = 0
    while position < len(view):
        end = min(position + _CHUNK, len(view))
        chunk = bytes(view[position:end])
        if end < len(view) and chunk.endswith(b"\r"):  # never cut a CRLF: pieces normalise as the whole
            chunk, end = chunk[:-1], end - 1
        position = end
        content.update(normalize_newlines(chunk))
        text = carry + chunk.translate(None, _NOT_BASE64)
        whole = len(text) - len(text) % 4
        carry = text[whole:]
        size = _add_decoded(binascii.a2b_base64(text[:whole]), digest, size, kept)
        kept = kept if kept is not None and size <= cap else None
    if carry.strip(b"="):
        size = _add_decoded(binascii.a2b_base64(carry + b"=" * (-len(carry) % 4)), digest, size, kept)
        kept = kept if kept is not None and size <= cap else None
    return _SetAside(size, digest.hexdigest(), None if kept is None else b"".join(kept))


def _add_decoded(decoded: bytes, digest: hashlib._Hash, size: int, kept: list[bytes] | None) -> int:
    digest.update(decoded)
    if kept is not None:
        kept.append(decoded)
    return size + len(decoded)


def _aside_of(part: Message, set_aside: list[_SetAside]) -> _SetAside | None:
    """The body ``_set_aside`` decoded for *part* (its payload is the marker line), or None."""
    payload = part.get_payload()
    if not isinstance(payload, str) or not payload.startswith(_ASIDE.decode()):
        return None
    index = payload.split()[1:2]
    if not index or not index[0].isdigit() or int(index[0]) >= len(set_aside):
        return None
    return set_aside[int(index[0])]


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


_PLAIN_ADDRESS = re.compile(
    r"[ \t]*(?:([A-Za-z0-9]+(?:[ \t]+[A-Za-z0-9]+)*)[ \t]*<([A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>|([A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*))"
    r"[ \t]*")


def _plain_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """``getaddresses(values)`` for the common plain lists (``Name Words <a@b.c>`` or ``a@b.c``, comma
    separated; no quotes, comments, groups or encoded words), None for anything else.

    Why: ``email.utils.getaddresses`` parses character by character in Python, a quarter of the parse
    worker's time per mail for four address headers; ``tests/test_parse.py`` checks both agree.
    """
    pairs: list[tuple[str, str]] = []
    for value in values:
        for item in value.split(","):
            match = _PLAIN_ADDRESS.fullmatch(item)
            if match is None:
                return None
            display, angled, bare = match.groups()
            pairs.append((" ".join(display.split()), angled) if angled else ("", bare))
    return pairs


def _addresses(msg: Message, name: str, notes: list[str]) -> list[tuple[str, str]]:
    values = [re.sub(r"\r?\n[ \t]+", " ", str(v)) for k, v in msg.raw_items() if k.lower() == name]
    if not values:
        return []
    pairs = _plain_addresses(values)
    if pairs is None:
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


def _fill_body_and_attachments(parsed: ParsedMessage, msg: Message, limits: IntakeSettings,
                               set_aside: list[_SetAside]) -> None:
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
        aside = _aside_of(part, set_aside)
        is_text_body = is_text_body or (part is msg and part.get_content_maintype() == "text")
        if is_text_body and (aside is None or aside.payload is not None):
            data = _part_bytes(part) if aside is None or aside.payload is None else aside.payload
            text = _decode_bytes(data, part.get_content_charset(), parsed.notes, "body").replace("\r\n", "\n")
            (html if ctype == "text/html" else plain).append(text)
            continue
        if aside is not None:  # decoded before parsing: never decoded or hashed again
            parsed.attachments.append(_attachment(part, filename, aside.size, aside.sha256, aside.payload, cap,
                                                  parsed.notes))
            continue
        payload = _part_bytes(part)
        parsed.attachments.append(_attachment(part, filename, len(payload), hashlib.sha256(payload).hexdigest(),
                                              payload, cap, parsed.notes))
    body = "\n\n".join(t.strip("\n") for t in plain if t.strip())
    if not body:
        body = "\n\n".join(html_to_text(t) for t in html if t.strip())
    parsed.body_full = body


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
    if not any("name" in str(value).lower() for key, value in part.raw_items()
               if key.lower() in ("content-disposition", "content-type")):
        return ""  # neither filename= nor name= (nor RFC 2231 filename*=): the common body part, without parsing
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


def _attachment(part: Message, filename: str, size: int, sha256: str, payload: bytes | None, cap: int,
                notes: list[str]) -> ParsedAttachment:
    """An attachment's record; over *cap* (or measured without its bytes) it is omitted, said in notes."""
    ctype = part.get_content_type()
    name = safe_filename(filename, ctype)
    if payload is None or size > cap:
        notes.append(f"attachment {name!r} omitted: {size} bytes over the [intake] max_attachment_bytes cap "
                     f"({cap})")
        payload = None
    return ParsedAttachment(filename=name, content_type=ctype, size=size, sha256=sha256, payload=payload)


class _PlainText(html2text.HTML2Text):
    """html2text without its Markdown escapes: the text is read by people and the classifier, not rendered.

    Why: html2text puts a backslash before what Markdown would take as markup at a line's start, so an
    HTML mail's "1. Open the CRM" became "1\\. Open the CRM" in the ticket; and the escaping (several
    regular expressions over every piece of text) was ~45 % of converting a 1.1 MB HTML mail of the
    corpus (0.68 s).  ``entity_char=True`` is html2text's own way of saying "do not escape this".
    """

    def handle_data(self, data: str, entity_char: bool = False) -> None:
        super().handle_data(data, entity_char=True)


def html_to_text(html: str) -> str:
    """Readable text from HTML-only mail; scripts, styles and images dropped, no hard wrapping."""
    html = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", html)
    converter = _PlainText()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.unicode_snob = True
    try:
        text = converter.handle(html)
    except Exception:  # noqa: BLE001 - html2text on pathological markup: fall back to tag stripping
        text = re.sub(r"<[^>]+>", " ", html)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
