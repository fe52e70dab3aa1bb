"""Signed reply addresses: ``support+HC-12.<token>@domain``.

Why: a reply command (``#resolve``) must come from a team member *and* from a mail
we sent about *that* ticket.  The token is an HMAC of the ticket key under a secret
the service generated on first start (or took from the environment); comparison
is constant-time, so it cannot be guessed byte by byte.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from config import SupportSettings

TOKEN_LENGTH = 16


class ReplyTokens:
    def __init__(self, secret: str, support: SupportSettings) -> None:
        self._secret = secret.encode()
        self.support = support
        self._plus = re.compile(
            rf"^{re.escape(support.local_part)}\+(?P<key>{re.escape(support.ticket_prefix)}-\d+)"
            rf"(?:\.(?P<token>[0-9a-f]+))?@{re.escape(support.domain)}$",
            re.IGNORECASE,
        )
        self._in_subject = re.compile(
            rf"\[(?P<key>{re.escape(support.ticket_prefix)}-\d+)(?:\.(?P<token>[0-9a-f]{{{TOKEN_LENGTH}}}))?\]",
            re.IGNORECASE,
        )

    def sign(self, key: str, purpose: str = "reply") -> str:
        digest = hmac.new(self._secret, f"{purpose}:{key.upper()}".encode(), hashlib.sha256).hexdigest()
        return digest[:TOKEN_LENGTH]

    def verify(self, key: str, token: str, purpose: str = "reply") -> bool:
        return hmac.compare_digest(self.sign(key, purpose), token.lower())

    def reply_address(self, key: str) -> str:
        return f"{self.support.local_part}+{key}.{self.sign(key)}@{self.support.domain}"

    def subject_tag(self, key: str) -> str:
        return f"[{key}]"

    def find_signed(self, recipients: list[str], subject: str) -> tuple[str, bool] | None:
        """The ticket key a mail is addressed to, and whether its token is valid.

        Looks at plus-addresses among the recipients first, then a ``[HC-12.<token>]``
        subject tag.  Returns None when neither names a ticket with a token.
        """
        for address in recipients:
            match = self._plus.match(address.strip())
            if match and match["token"]:
                return match["key"].upper(), self.verify(match["key"], match["token"])
        match = self._in_subject.search(subject)
        if match and match["token"]:
            return match["key"].upper(), self.verify(match["key"], match["token"])
        return None

    def plus_key(self, recipients: list[str]) -> str | None:
        """A ticket key named by a plus-address without token (``support+HC-12@``)."""
        for address in recipients:
            match = self._plus.match(address.strip())
            if match:
                return match["key"].upper()
        return None

    def subject_keys(self, subject: str) -> list[str]:
        return [m["key"].upper() for m in self._in_subject.finditer(subject)]
