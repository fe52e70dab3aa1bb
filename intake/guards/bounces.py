"""Recognising mail that mail systems write: bounces, DSNs, ARF/MDN reports, and whom a bounce names.

Why a module of its own: these patterns and parsers are the knowledge of what mail
servers (qmail, Postfix, Exim, Exchange, MDaemon, Amazon SES ...) actually send, tuned
against the shared corpus (docs/corpus.md); the rules in ``intake.guards.rules`` only decide
when to apply them. Keeping them apart lets the registry stay a readable table.
"""

from __future__ import annotations

import re
from email.message import Message

from intake.parse.message import ParsedMessage

# Anchored at the start: a customer writing "Undeliverable campaign mails" is a ticket, not a bounce.
BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]*\]\s*)?(?:undeliver(?:ed|able)\b|delivery status notification|"
    r"delivery (?:notification|failure|report|has failed|problem)|mail delivery (?:failed|failure|system)|"
    r"returned mail\b|return(?:ed)? to sender|failure notice|non[- ]?delivery|nondeliverable|"
    r"(?:message|mail) (?:could )?not (?:be )?delivered|delivery failed|failed delivery|"
    r"warning: could not send|mail system error|permanent (?:delivery )?error|bounced? mail|"
    r"message (?:delivery )?(?:has )?failed|unzustellbar|nicht zustellbar|non remis|non distribuable|"
    r"mensaje no entregado|no se ha podido entregar|impossibile recapitare|onbestelbaar|"
    r"(?:mail )?delivery (?:status )?warning|niedostarczon|не доставлен|недоставлен|配信不能|"
    r"メールエラー|未送达|退信|\W*delivery failure)",
    re.I,
)
_DAEMON_LOCALS = re.compile(r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|post[-_]?master|mdaemon)\b", re.I)
_DAEMON_NAMES = re.compile(r"^\s*(?:mail delivery (?:sub)?system|mailer[-_ ]daemon|mail administrator|"
                           r"postmaster|delivery status notification)\b", re.I)
_ADDR = r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+"  # lookbehind: linear
_TEXT_RECIPIENT = (
    re.compile(rf"^[ \t]*(?:final|original)-recipient:[ \t]*(?:rfc822;)?[ \t]*<?({_ADDR})", re.I | re.M),
    re.compile(rf"^[ \t]*<({_ADDR})>:?[ \t]*$|^<({_ADDR})>:", re.M),  # qmail, Postfix
    re.compile(rf"following (?:e-?mail )?(?:address(?:es)?|recipients?)(?:\(s\))?[^\n]*\n[\s>]*"
               rf"(?:[^\n]*?SMTP=)?<?({_ADDR})>?", re.I),  # Exim, Exchange, MDaemon
    re.compile(rf"(?:could not be delivered to|delivery to the following recipients? failed[^\n]*|"
               rf"failed recipients?:?|unknown (?:user|recipient)|user unknown|no such user|"
               rf"undeliverable to|recipient address rejected|delivery failed \d+ attempts|"
               rf"invalid final delivery userid|addressed to|mailbox unavailable)"
               rf"[:\s'\"]*<?({_ADDR})>?", re.I),
)
_FAILED_ACTIONS = ("failed", "")
# Phrases only mail systems write at the top of a bounce; searched before any forward/quote marker.
BOUNCE_TEXT = re.compile(
    r"this is the (?:qmail-send|mail delivery) program|created automatically by mail delivery software|"
    r"message could not be delivered to|could not be delivered to the following|"
    r"delivery to the following recipients? (?:failed|has been delayed)|"
    r"i'?m sorry to (?:have to )?inform you that (?:your|the) message|undeliverable message|"
    r"has been postponed due to|permanent fatal errors?|n'a pas pu [eê]tre d[ée]livr[ée]|"
    r"\"notificationType\\?\"\s*:\s*\\?\"(?:Bounce|Complaint|Delivery)\\?\"",
    re.I | re.M,
)
FORWARD_MARK = re.compile(r"^(?:-{2,}.{0,30}(?:forward|original|weitergeleitet|message d'origine)|>)",
                           re.I | re.M)
_SES_RECIPIENT = re.compile(rf'"emailAddress\\?"\s*:\s*\\?"({_ADDR})')


def has_part(parsed: ParsedMessage, *content_types: str) -> bool:
    """True when any part (not inside an attached message) has one of *content_types*."""
    return not parsed.part_types(_part_types).isdisjoint(content_types)


def _part_types(msg: Message) -> frozenset[str]:
    """The content type of every part not inside an attached message (nested at most 20 deep)."""
    found: set[str] = set()
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        content_type = part.get_content_type()  # (get_content_maintype would parse the header again)
        found.add(content_type)
        payload = part.get_payload()
        if depth < 20 and content_type.startswith("multipart/") and isinstance(payload, list):
            stack.extend((sub, depth + 1) for sub in payload if isinstance(sub, Message))
    return frozenset(found)


def is_daemon_address(address: str) -> bool:
    return bool(_DAEMON_LOCALS.match(address.strip().strip("<>")))


def is_daemon_name(name: str) -> bool:
    return bool(_DAEMON_NAMES.match(name))


def _header(block: Message, name: str) -> str:
    for key, value in block.raw_items():
        if key.lower() == name:
            return " ".join(str(value).split())
    return ""


def _dsn_recipients(parsed: ParsedMessage) -> list[str]:
    """Final-/Original-Recipient of each failed recipient block in message/delivery-status parts."""
    found: list[str] = []
    stack = [parsed.msg] if parsed.msg is not None else []
    while stack:
        part = stack.pop()
        payload = part.get_payload()
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            blocks = [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
            for block in blocks:
                action = _header(block, "action").lower()
                status = _header(block, "status")
                if action in _FAILED_ACTIONS and not (not action and status.startswith(("2", "4"))):
                    for name in ("original-recipient", "final-recipient"):
                        found += re.findall(_ADDR, _header(block, name).rpartition(";")[2])
            if isinstance(payload, str):
                found += [m for m in _TEXT_RECIPIENT[0].findall(payload)]
        elif part.get_content_maintype() == "multipart" and isinstance(payload, list):
            stack.extend(sub for sub in payload if isinstance(sub, Message))
    return found


def failed_recipients(parsed: ParsedMessage) -> list[str]:
    """Addresses a bounce says it could not deliver to: DSN fields first, then common bounce texts."""
    found = _dsn_recipients(parsed)
    found += re.findall(_ADDR, parsed.header("X-Failed-Recipients"))
    if not found:
        text = parsed.body_full[:20000]
        if re.search(r'"notificationType\\?"\s*:\s*\\?"Bounce', text):  # Amazon SES JSON
            found += _SES_RECIPIENT.findall(text)
        for pattern in _TEXT_RECIPIENT:
            for match in pattern.finditer(text):
                found += [g for g in match.groups() if g]
    return list(dict.fromkeys(a.lower().strip(".") for a in found))


def our_message_ids(parsed: ParsedMessage, domain: str, prefix: str, limit: int = 1 << 20) -> list[str]:
    """Message-IDs in our format (``hc.<kind>.<random>@domain``) anywhere in the bounce: its In-Reply-To
    and References, the returned headers of a DSN, or the quoted original of a plain-text bounce.

    Why the raw bytes: each mail system returns the original differently (message/rfc822,
    text/rfc822-headers, quoted in the text); the first MiB holds it in every sample of the corpus.
    """
    pattern = re.compile(re.escape(prefix).encode() + rb"[A-Za-z0-9._-]{1,120}@" + re.escape(domain).encode(), re.I)
    found = [m.group(0).decode("ascii").lower() for m in pattern.finditer(parsed.raw[:limit])]
    found += [i.lower() for i in [parsed.in_reply_to or "", *parsed.references] if i.lower().startswith(prefix)]
    return list(dict.fromkeys(found))


def report_type(parsed: ParsedMessage) -> str:
    """The report-type of a top-level multipart/report (lower case), or "" for any other mail."""
    msg = parsed.msg
    if msg is None or "multipart/report" not in parsed.part_types(_part_types) \
            or msg.get_content_type() != "multipart/report":
        return ""
    try:
        return str(msg.get_param("report-type", "") or "").lower()
    except Exception:  # noqa: BLE001
        return ""
