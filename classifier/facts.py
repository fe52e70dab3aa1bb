"""What the classifier may look at in a mail, and nothing else.

Why a separate frozen record: the rules must give the same verdict for the same mail
on ingest, in ``hypercare classify`` and in ``rules replay``; reducing a parsed mail
to these facts in one place guarantees that, and lets tests and the benchmark build
mails without MIME.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from classifier.forwarded import is_forwarded

if TYPE_CHECKING:
    from intake.parse.message import ParsedMessage


BODY_CHARS = 100_000  # what a rule reads of the body: an 850 KB body cost the regexes 0.4 s, and decides nothing


@dataclass(frozen=True)
class MailFacts:
    subject: str
    body: str  # quote-stripped body (ParsedMessage.body); of a forward, the whole body
    sender: str  # lower-case address
    recipients: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    attachment_types: tuple[str, ...] = ()
    received_at: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    forwarded: bool = False  # body is then the whole body, forwarded part included (classifier.forwarded)

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            object.__setattr__(self, "received_at", self.received_at.replace(tzinfo=UTC))
        object.__setattr__(self, "sender", self.sender.lower())
        object.__setattr__(
            self, "headers", MappingProxyType({k.lower(): v for k, v in dict(self.headers).items()})
        )

    @classmethod
    def from_parsed(cls, parsed: ParsedMessage, received_at: datetime,
                    header_names: Collection[str] | None = None) -> MailFacts:
        """The facts of a parsed mail; *received_at* is when we got it (naive = UTC).

        *header_names*: only these headers (lower-case; ``Classifier.header_names``, the ones some
        rule reads); None: every header (the dry-run tools show them all).
        """
        subject, full = parsed.subject or "", parsed.body_full or ""
        forwarded = is_forwarded(subject, full[:BODY_CHARS])
        return cls(
            subject=subject,
            body=((full if forwarded else parsed.body) or "")[:BODY_CHARS],
            forwarded=forwarded,
            sender=(parsed.from_addr or "").lower(),
            recipients=tuple(parsed.all_recipients),
            headers=_headers(parsed, header_names),
            attachment_types=tuple(a.content_type.lower() for a in parsed.attachments),
            received_at=received_at,
        )


def _headers(parsed: ParsedMessage, wanted: Collection[str] | None) -> dict[str, str]:
    """Lower-case name -> decoded value; repeated headers joined by newlines; bad ones skipped."""
    headers: dict[str, str] = {}
    msg = parsed.msg
    if msg is None:
        return headers
    # One pass over the fields (``get_all`` per name scanned every header again: 10,000 headers took 8 s).
    for name, raw in msg.raw_items():
        if wanted is not None and name.lower() not in wanted:
            continue
        try:
            value = str(msg.policy.header_fetch_parse(name, raw))
        except Exception:  # noqa: BLE001 - one undecodable header must not stop classification
            continue
        key = name.lower()
        headers[key] = f"{headers[key]}\n{value}" if key in headers else value
    return headers
