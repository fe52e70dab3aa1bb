"""Signed reply addresses: ``support+HC-12.<token>@domain``, a credential bound and bounded.

Why each part of the token (issue 13): replying to the signed address is what authorises a
``#resolve``, so the address is a credential and is shaped like one:

* bound to one ticket and one recipient: the MAC covers the ticket key *and* the team
  member's address, and a reply acts only when its ``From`` is that member (a token another
  member received, or one an outsider copied, proves nothing for them);
* bounded in time: the token carries its expiry (hours since 2020, 5 hex digits), renewed
  because every new mail to the member gets a fresh token (``[replies] token_days``, default 14);
* 96 bits of HMAC-SHA256 (24 hex digits), compared in constant time;
* signed at send time (``sign_mail``, called by the outbox): what is stored (outbox row,
  messages table) holds only the unsigned placeholder ``support+HC-12.unsigned@``, so no
  dashboard, export or backup carries a live credential; mail we receive is stored with the
  token redacted (``redact``);
* the secret rotates (``tickets.reply_secret``): the previous one verifies during a grace period.

The rating token (``purpose="feedback"``, ``replies.ratings``) uses the same secrets; it only
lets a ticket's participant rate it, so it is bound to the ticket alone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from config import SupportSettings
from tickets.reply_secret import ReplySecrets

TOKEN_LENGTH = 24  # hex digits of MAC: 96 bits (also the rating token's length)
EXPIRY_LENGTH = 5  # hex digits: hours since EPOCH, good until the year 2139
REPLY_TOKEN_LENGTH = EXPIRY_LENGTH + TOKEN_LENGTH
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
UNSIGNED = "unsigned"  # the placeholder stored instead of a token; signed when the mail is sent
# The exit report's signed address (issue 16): ``support+EXIT-20261218.<token>@`` names no ticket but the
# exit report of that day; a project manager's ``#decision`` reply to it is checked like a ticket token.
EXIT_PREFIX = "EXIT"
REDACTED = "redacted"  # what a received token is stored as
RELOAD_SECONDS = 30.0  # a rotation by another process is seen within this time

VALID, EXPIRED, OTHER_MEMBER, FORGED = "valid", "expired", "other-member", "forged"
_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True)
class SignedCheck:
    """What a signed address in a mail proves about its sender."""

    key: str  # the ticket key the address names
    verdict: str  # valid | expired | other-member | forged
    minted_for: str = ""  # the member the token was sent to (expired, other-member)
    expires: datetime | None = None

    @property
    def valid(self) -> bool:
        return self.verdict == VALID

    @property
    def genuine(self) -> bool:
        """We minted it (for someone, once): the ticket it names is the one the mail is about."""
        return self.verdict != FORGED

    def reason(self, sender: str) -> str:
        """One line for the audit trail and the refusal notice; never the token itself."""
        if self.verdict == EXPIRED:
            return (f"the signed reply address expired on {self.expires:%Y-%m-%d %H:%M} UTC; "
                    "reply to a newer mail about the ticket")
        if self.verdict == OTHER_MEMBER:
            return f"the signed reply address was sent to {self.minted_for}, not to {sender}; it acts only for them"
        if self.verdict == FORGED:
            return "the signed reply address is not one this desk minted (forged, or signed with a retired secret)"
        return ""


def unsigned_address(support: SupportSettings, key: str) -> str:
    """The placeholder Reply-To of a mail about *key* (a ticket, or the exit report) that ``sign_mail``
    signs for the mail's one recipient when the outbox sends it."""
    return f"{support.local_part}+{key}.{UNSIGNED}@{support.domain}"


def _hours(when: datetime) -> int:
    return int((when - EPOCH).total_seconds() // 3600)


class ReplyTokens:
    """Mints and checks reply tokens; *secrets* is a fixed ``ReplySecrets`` or a loader (re-read every 30 s)."""

    def __init__(self, secrets: ReplySecrets | Callable[[], ReplySecrets], support: SupportSettings,
                 *, token_days: float = 14.0) -> None:
        self._load = secrets if callable(secrets) else (lambda: secrets)
        self._secrets: ReplySecrets | None = None
        self._loaded_at = 0.0
        self.support = support
        self.lifetime = timedelta(days=token_days)
        local, prefix, domain = (re.escape(support.local_part), re.escape(support.ticket_prefix),
                                 re.escape(support.domain))
        keys = rf"(?:{prefix}|{EXIT_PREFIX})"  # a ticket's address, or the exit report's
        self._plus = re.compile(
            rf"^{local}\+(?P<key>{keys}-\d+)(?:\.(?P<token>[0-9a-z]+))?@{domain}$", re.IGNORECASE)
        self._in_subject = re.compile(
            rf"\[(?P<key>{prefix}-\d+)(?:\.(?P<token>[0-9a-f]{{{REPLY_TOKEN_LENGTH}}}))?\]", re.IGNORECASE)
        self._placeholder = re.compile(
            rf"{local}\+(?P<key>{keys}-\d+)\.{UNSIGNED}@{domain}".encode(), re.IGNORECASE)
        self._placeholder_text = re.compile(rf"{local}\+(?P<key>{keys}-\d+)\.{UNSIGNED}@{domain}", re.IGNORECASE)
        # One case-sensitive pattern per spelling of the prefix ("HC-", "hc-"): a pattern that starts with
        # a literal is found by a fast substring search, an IGNORECASE one is tried at every byte.
        token = rf"-\d+\.)[0-9a-fA-F]{{{REPLY_TOKEN_LENGTH}}}(?![0-9a-fA-F])"
        spellings = dict.fromkeys((support.ticket_prefix.upper(), support.ticket_prefix.lower(),
                                   EXIT_PREFIX, EXIT_PREFIX.lower()))
        self._token_text = [re.compile(rf"(?P<head>{re.escape(p)}{token}") for p in spellings]
        self._token_bytes = [re.compile(rf"(?P<head>{re.escape(p)}{token}".encode()) for p in spellings]

    # --- secrets -----------------------------------------------------------------------------
    def secrets(self) -> ReplySecrets:
        if self._secrets is None or time.monotonic() - self._loaded_at > RELOAD_SECONDS:
            self._secrets = self._load()
            self._loaded_at = time.monotonic()
        return self._secrets

    def reload(self) -> None:
        """Forget the cached secrets (after ``secret rotate`` in this process)."""
        self._secrets = None

    @staticmethod
    def _mac(secret: str, message: str, length: int = TOKEN_LENGTH) -> str:
        return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:length]

    # --- reply tokens (team members) ---------------------------------------------------------
    def token(self, key: str, member: str, now: datetime) -> str:
        expiry = f"{_hours(now + self.lifetime) + 1:0{EXPIRY_LENGTH}x}"
        return expiry + self._mac(self.secrets().current, self._message(key, member, expiry))

    @staticmethod
    def _message(key: str, member: str, expiry: str) -> str:
        return f"reply:{key.upper()}:{member.strip().lower()}:{expiry.lower()}"

    def reply_address(self, key: str, member: str, now: datetime) -> str:
        """The Reply-To for a mail about *key* to *member*: lets them, and only them, act until expiry."""
        return f"{self.support.local_part}+{key}.{self.token(key, member, now)}@{self.support.domain}"

    def unsigned_address(self, key: str) -> str:
        """What a stored mail carries instead of the signed address (``sign_mail`` replaces it)."""
        return unsigned_address(self.support, key)

    def plain_address(self, key: str) -> str:
        return f"{self.support.local_part}+{key}@{self.support.domain}"

    def check(self, key: str, token: str, sender: str, now: datetime, team: Iterable[str] = ()) -> SignedCheck:
        """Is *token* (for ticket *key*) valid for *sender* at *now*; if not, why."""
        token = token.lower()
        if len(token) != REPLY_TOKEN_LENGTH or not _HEX.fullmatch(token):
            return SignedCheck(key, FORGED)
        expiry, mac = token[:EXPIRY_LENGTH], token[EXPIRY_LENGTH:]
        expires = EPOCH + timedelta(hours=int(expiry, 16))
        accepted = self.secrets().accepted(now)

        def minted_for(member: str) -> bool:
            message = self._message(key, member, expiry)
            return any(hmac.compare_digest(self._mac(s, message), mac) for s in accepted)

        if minted_for(sender):
            return SignedCheck(key, VALID if now < expires else EXPIRED, sender.lower(), expires)
        for member in team:
            if member.lower() != sender.lower() and minted_for(member):
                return SignedCheck(key, OTHER_MEMBER, member.lower(), expires)
        return SignedCheck(key, FORGED)

    def find_signed(self, recipients: Sequence[str], subject: str, sender: str, now: datetime,
                    team: Iterable[str] = ()) -> SignedCheck | None:
        """The signed address (or ``[HC-12.<token>]`` subject tag) a mail names, checked; None when none."""
        for address in recipients:
            match = self._plus.match(address.strip())
            if match and match["token"]:
                return self.check(match["key"].upper(), match["token"], sender, now, team)
        match = self._in_subject.search(subject)
        if match and match["token"]:
            return self.check(match["key"].upper(), match["token"], sender, now, team)
        return None

    # --- at send time, and what is stored ----------------------------------------------------
    def sign_mail(self, data: bytes, recipients: Sequence[str], now: datetime) -> bytes:
        """Replace the placeholder in the header block of *data* by the address signed for its one recipient.

        A mail to several recipients cannot carry one person's credential: it gets the plain
        ``support+HC-12@`` address (threads, authorises nothing).
        """
        end = data.find(b"\r\n\r\n")
        end = data.find(b"\n\n") if end < 0 else end
        end = len(data) if end < 0 else end
        head = data[:end]
        if self._placeholder.search(head) is None:
            return data  # most mail (acknowledgements, answers, digests): nothing to sign, no copy

        def signed(match: re.Match[bytes]) -> bytes:
            key = match["key"].decode().upper()
            if len(recipients) != 1:
                return self.plain_address(key).encode()
            return self.reply_address(key, recipients[0], now).encode()

        return self._placeholder.sub(signed, head) + data[end:]

    def sign_text(self, text: str, recipients: Sequence[str], now: datetime) -> str:
        """Every placeholder in *text* (a mail body) signed for its one recipient, for its own ticket.

        Why in a body: the triage digest lists many tickets, and the member acts on each by writing
        to that ticket's address (``notifier.send_time``, only for mail that asks for it).  Text from
        outside that a body quotes must be passed through ``neutralise`` first, so only the
        placeholders the desk itself wrote become credentials.
        """
        def signed(match: re.Match[str]) -> str:
            key = match["key"].upper()
            if len(recipients) != 1:
                return self.plain_address(key)
            return self.reply_address(key, recipients[0], now)

        return self._placeholder_text.sub(signed, text)

    def neutralise(self, text: str) -> str:
        """*text* (a subject, a name: anything a stranger wrote) with every placeholder made a plain
        address, so a mail signed at send time never turns a stranger's text into a credential."""
        return self._placeholder_text.sub(lambda m: self.plain_address(m["key"].upper()), text)

    def carries_token(self, text: str) -> bool:
        """Does *text* name a reply token anywhere (it must then be stored redacted)?"""
        return bool(text) and any(pattern.search(text) for pattern in self._token_text)

    def redact(self, text: str) -> str:
        """*text* with every reply token replaced by ``redacted`` (for storing mail we received)."""
        for pattern in self._token_text:
            text = pattern.sub(rf"\g<head>{REDACTED}", text) if text else text
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        for pattern in self._token_bytes:
            data = pattern.sub(rb"\g<head>" + REDACTED.encode(), data) if data else data
        return data

    # --- plain tags and rating tokens --------------------------------------------------------
    def sign(self, key: str, purpose: str) -> str:
        """A ticket-bound token for *purpose* (the rating request); 96 bits."""
        return self._mac(self.secrets().current, f"{purpose}:{key.upper()}")

    def verify(self, key: str, token: str, purpose: str, now: datetime) -> bool:
        return any(hmac.compare_digest(self._mac(s, f"{purpose}:{key.upper()}"), token.lower())
                   for s in self.secrets().accepted(now))

    def subject_tag(self, key: str) -> str:
        return f"[{key}]"

    def plus_key(self, recipients: list[str]) -> str | None:
        """A ticket key named by a plus-address without a valid token (``support+HC-12@``)."""
        for address in recipients:
            match = self._plus.match(address.strip())
            if match:
                return match["key"].upper()
        return None

    @staticmethod
    def exit_key(day: date) -> str:
        """The key of the exit report of *day* in its signed address (``EXIT-20261218``)."""
        return f"{EXIT_PREFIX}-{day:%Y%m%d}"

    @staticmethod
    def is_exit_key(key: str) -> bool:
        return key.upper().startswith(EXIT_PREFIX + "-")

    def subject_keys(self, subject: str) -> list[str]:
        return [m["key"].upper() for m in self._in_subject.finditer(subject)]
