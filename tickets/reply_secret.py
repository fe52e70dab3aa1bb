"""The secret that signs reply addresses: where it lives, and how it is rotated with a grace period.

Why a module of its own: the secret is the one thing that turns a reply address into the
authority to act on a ticket, so how it is kept, replaced and retired must be readable in one
place.  Two sources, never mixed:

* the database (default): ``settings.reply_secret``, generated on first start.  ``hypercare
  secret rotate`` moves it to ``reply_secret_previous`` with ``reply_secret_previous_until`` =
  now + grace (``[replies] secret_grace_hours``, default 24; ``--no-grace`` ends it at once)
  and stores a fresh one.
* the environment: ``HYPERCARE_REPLY_SECRET`` (then nothing secret is stored).  Changing it
  invalidates every token signed with the old value, except that ``HYPERCARE_REPLY_SECRET_PREVIOUS``
  (the old value) is still accepted for the grace period counted from the first start that
  saw the new value; only a fingerprint (an HMAC of a constant under the secret) and that time
  are stored, to notice the change.

Signing always uses the current secret; verifying accepts the previous one only inside the grace.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.errors import UserError
from tickets.models import Setting
from tickets.store import Store, ensure_setting, get_setting

ENV_SECRET = "HYPERCARE_REPLY_SECRET"
ENV_PREVIOUS = "HYPERCARE_REPLY_SECRET_PREVIOUS"
CURRENT, PREVIOUS, PREVIOUS_UNTIL = "reply_secret", "reply_secret_previous", "reply_secret_previous_until"
ENV_FINGERPRINT, ENV_SINCE = "reply_secret_env_fingerprint", "reply_secret_env_since"


class SecretFromEnvironment(UserError):
    """``secret rotate`` while the secret comes from the environment: rotate it there."""


@dataclass(frozen=True)
class ReplySecrets:
    """The signing secret and, during a grace period, the one it replaced."""

    current: str
    previous: str = ""
    previous_until: datetime | None = None

    def accepted(self, now: datetime) -> tuple[str, ...]:
        """Secrets a token may be signed with at *now*: the current one first."""
        if self.previous and self.previous_until is not None and now < self.previous_until:
            return (self.current, self.previous)
        return (self.current,)


def fingerprint(secret: str) -> str:
    """Recognises a secret without storing it."""
    return hmac.new(secret.encode(), b"hypercare reply secret fingerprint", hashlib.sha256).hexdigest()[:16]


class ReplySecretStore:
    """Reads and rotates the reply secret in the ``settings`` table (or follows the environment)."""

    def __init__(self, store: Store, environ: dict[str, str] | None = None, grace_hours: float = 24.0) -> None:
        self.store = store
        self.environ = dict(environ or {})
        self.grace = timedelta(hours=grace_hours)

    @property
    def from_environment(self) -> bool:
        return bool(self.environ.get(ENV_SECRET))

    def load(self, now: datetime) -> ReplySecrets:
        if self.from_environment:
            return self._from_environment(now)
        with self.store.read() as session:
            current, previous, until = (get_setting(session, k) for k in (CURRENT, PREVIOUS, PREVIOUS_UNTIL))
        if current is None:
            with self.store.session() as session:
                current = ensure_setting(session, CURRENT, secrets.token_hex(32))
        return ReplySecrets(current, previous or "", datetime.fromisoformat(until) if until else None)

    def _from_environment(self, now: datetime) -> ReplySecrets:
        current = self.environ[ENV_SECRET]
        mark = fingerprint(current)
        with self.store.read() as session:
            known, since = get_setting(session, ENV_FINGERPRINT), get_setting(session, ENV_SINCE)
        if known != mark or since is None:
            with self.store.session() as session:
                _put(session, ENV_FINGERPRINT, mark)
                _put(session, ENV_SINCE, now.isoformat())
            since = now.isoformat()
        previous = self.environ.get(ENV_PREVIOUS, "")
        return ReplySecrets(current, previous if previous != current else "",
                            datetime.fromisoformat(since) + self.grace if previous else None)

    def rotate(self, now: datetime, *, grace: bool = True) -> ReplySecrets:
        """A fresh secret; the old one is accepted until now + grace (or not at all)."""
        if self.from_environment:
            raise SecretFromEnvironment(
                f"the reply secret comes from {ENV_SECRET}: set a new value there and the old one in "
                f"{ENV_PREVIOUS} for the grace period (docs/operations.md, 'Rotating the reply secret')")
        old = self.load(now)
        until = now + self.grace if grace else now
        fresh = secrets.token_hex(32)
        with self.store.session() as session:
            _put(session, PREVIOUS, old.current)
            _put(session, PREVIOUS_UNTIL, until.isoformat())
            _put(session, CURRENT, fresh)
        return ReplySecrets(fresh, old.current, until)


def _put(session, key: str, value: str) -> None:  # type: ignore[no-untyped-def]
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
