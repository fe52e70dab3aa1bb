"""What the parser hands to the rest of intake: one decoded mail, raw bytes kept.

Why a plain dataclass: guards, threading, the classifier and the store all read the
same facts; none of them should touch ``email.message`` decoding quirks again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from core.errors import HypercareError


class UnparseableMessage(HypercareError):
    """The bytes are not a mail we can read; the message goes to quarantine with this reason."""


@dataclass
class ParsedAttachment:
    filename: str  # decoded and path-safe (no directories, no control characters)
    content_type: str
    size: int
    sha256: str
    payload: bytes | None  # None when over the size cap (recorded as omitted)


@dataclass
class ParsedMessage:
    raw: bytes
    message_id: str  # without angle brackets; synthesized from content_hash when the mail has none
    has_message_id: bool
    content_hash: str  # sha256 of the normalized content (dedup when there is no Message-ID)
    subject: str
    from_addr: str  # lower-cased address, "" when missing
    from_name: str
    from_problem: str = ""  # why the sender is ambiguous (intake.parse.identity); "" when clear
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    date: datetime | None = None
    in_reply_to: str | None = None  # without angle brackets
    references: list[str] = field(default_factory=list)  # without angle brackets, oldest first
    body_full: str = ""  # best text body, complete
    body: str = ""  # quoted history and signature removed: what the ticket view shows
    attachments: list[ParsedAttachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # decoding problems, e.g. "charset x-unknown replaced"
    envelope_recipients: list[str] = field(default_factory=list)  # RCPT TO, when known
    msg: EmailMessage | None = None  # the parsed tree, for guards that read headers
    verdict: Any = None  # the classifier's Verdict when the parse worker computed it (intake.pipeline)
    language: str = ""  # the reporter's language ("en", "de", "fr") when the parse worker computed it
    guards_clear: bool = False  # the parse worker ran every guard and none objected (intake.pipeline)
    _present: frozenset[str] | None = field(default=None, repr=False, compare=False)
    _values: dict[str, str] | None = field(default=None, repr=False, compare=False)
    _part_types: frozenset[str] | None = field(default=None, repr=False, compare=False)

    def header(self, name: str) -> str:
        """A header's decoded value ("" when absent or undecodable); never raises.

        Why the set of names: the guards ask each mail for some thirty headers it almost never has,
        and ``Message.get`` compares every header name for each; an absent one now costs a set look-up.
        """
        if self.msg is None:
            return ""
        if self._present is None:
            self._present = frozenset(key.lower() for key in self.msg.keys())
        lower = name.lower()
        if lower not in self._present:
            return ""
        if self._values is None:
            self._values = {}
        elif lower in self._values:
            return self._values[lower]  # several guards read the same header (Return-Path, Sender)
        try:
            value = self.msg.get(name)
        except Exception:  # noqa: BLE001 - malformed headers must not stop a guard
            return ""
        text = self._values[lower] = "" if value is None else str(value)
        return text

    def part_types(self, walk: Callable[[EmailMessage], frozenset[str]]) -> frozenset[str]:
        """The content types *walk* finds in the tree, worked out once per mail (three guards ask)."""
        if self._part_types is None:
            self._part_types = walk(self.msg) if self.msg is not None else frozenset()
        return self._part_types

    @property
    def authority_address(self) -> str:
        """The sender for decisions that grant rights (team commands, joining a ticket): "" when ambiguous."""
        return "" if self.from_problem else self.from_addr

    @property
    def all_recipients(self) -> list[str]:
        seen: dict[str, None] = {}
        for address in [*self.envelope_recipients, *self.to, *self.cc]:
            seen.setdefault(address.lower(), None)
        return list(seen)
