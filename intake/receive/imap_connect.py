"""Opening an authenticated IMAP session from ``[imap]``: TLS mode, password or XOAUTH2.

Why a module of its own: every way a connection can fail (no credentials, refused,
TLS, wrong password, timeout, dropped) is turned here into one of a few specific
exceptions whose message is the one line an operator needs, so the poller, the
daemon thread and ``hypercare status`` all speak the same language.
"""

from __future__ import annotations

import imaplib
import logging
import re
import shlex
import socket
import ssl
import subprocess
from collections.abc import Mapping

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from config import ImapSettings
from core.errors import HypercareError, TryLater, UserError

log = logging.getLogger("hypercare.imap")
TRACE_LOGGER = "imapclient.imaplib"  # the protocol trace, shown with -v (DEBUG)


class ImapError(HypercareError):
    """Something went wrong talking to the mailbox; the message is one line for the log and status."""


class ImapConfigProblem(ImapError, UserError):
    """The [imap] settings cannot work as written; the CLI prints the message and exits 2."""


class ImapNotConfigured(ImapConfigProblem):
    """A command needs the mailbox but the config has no [imap] section."""


class ImapLoginFailed(ImapConfigProblem):
    """The server refused our credentials (or token): wrong password, expired token, wrong user."""


class ImapFolderMissing(ImapConfigProblem):
    """The folder to poll does not exist on the server."""


class ImapUnreachable(ImapError, TryLater):
    """Connection refused, dropped, timed out, or TLS failed: worth retrying with backoff."""


class ImapProtocolProblem(ImapError):
    """The server answered NO/BAD to a command we needed (e.g. SELECT of a missing folder)."""


def connect(settings: ImapSettings, environ: Mapping[str, str],
            ssl_context: ssl.SSLContext | None = None) -> IMAPClient:
    """Connect, secure and log in; raise one of the ImapError classes, never a raw socket error."""
    where = f"{settings.host}:{settings.port}"
    secret, use_oauth = credentials(settings, environ)
    try:
        client = IMAPClient(settings.host, port=settings.port, ssl=settings.security == "ssl",
                            ssl_context=ssl_context, timeout=settings.timeout)
    except (OSError, IMAPClientError) as exc:
        raise translate(exc, where) from None
    _quiet_trace(client)
    try:
        if settings.security == "starttls":
            client.starttls(ssl_context)
        if use_oauth:
            client.oauth2_login(settings.username, secret)
        else:
            client.login(settings.username, secret)
    except LoginError as exc:
        _close(client)
        how = "XOAUTH2 token" if use_oauth else f"password from ${settings.password_env}"
        raise ImapLoginFailed(f"IMAP login to {where} as {settings.username} failed ({_text(exc)}); "
                              f"check [imap] username and the {how}") from None
    except (OSError, IMAPClientError) as exc:
        _close(client)
        raise translate(exc, where) from None
    log.debug("imap connected to %s as %s security=%s", where, settings.username, settings.security)
    return client


def credentials(settings: ImapSettings, environ: Mapping[str, str]) -> tuple[str, bool]:
    """(secret, is_oauth2) from the environment or the token command; secrets never live in the file."""
    if settings.oauth2_token_env:
        token = environ.get(settings.oauth2_token_env, "")
        if not token:
            raise ImapConfigProblem(f"[imap] oauth2_token_env: environment variable "
                                    f"${settings.oauth2_token_env} is empty or unset; export the access token")
        return token.strip(), True
    if settings.oauth2_token_command:
        return _token_from_command(settings.oauth2_token_command, settings.timeout), True
    if settings.password_env:
        password = environ.get(settings.password_env)
        if not password:
            raise ImapConfigProblem(f"[imap] password_env: environment variable ${settings.password_env} "
                                    "is empty or unset; export the mailbox password")
        return password, False
    raise ImapConfigProblem("[imap]: no credentials; set password_env, oauth2_token_env or oauth2_token_command")


def _token_from_command(command: str, timeout: float) -> str:
    """Run the token helper (e.g. an OAuth2 refresh script); its stdout's first line is the access token."""
    try:
        done = subprocess.run(shlex.split(command), capture_output=True, timeout=max(timeout, 5.0), check=False)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise ImapConfigProblem(f"[imap] oauth2_token_command {command!r} could not run: {exc}") from None
    token = done.stdout.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0 or not token or not token[0].strip():
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ImapConfigProblem(f"[imap] oauth2_token_command {command!r} exited {done.returncode} without a "
                                f"token{': ' + err[-1] if err else ''}")
    return token[0].strip()


def translate(exc: BaseException, where: str) -> ImapError:
    """Map socket/TLS/imaplib exceptions to the specific ImapError an operator can act on."""
    if isinstance(exc, ImapError):
        return exc
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return ImapUnreachable(f"IMAP {where}: TLS failed ({_text(exc)}); check [imap] security and the "
                               "server certificate")
    if isinstance(exc, socket.timeout | TimeoutError):
        return ImapUnreachable(f"IMAP {where}: timed out; the server is slow or unreachable")
    if isinstance(exc, ConnectionRefusedError):
        return ImapUnreachable(f"IMAP {where}: connection refused; is the server up and [imap] port right?")
    if isinstance(exc, socket.gaierror):
        return ImapUnreachable(f"IMAP {where}: unknown host; check [imap] host")
    if isinstance(exc, OSError | IMAPClientAbortError | imaplib.IMAP4.abort | EOFError):
        return ImapUnreachable(f"IMAP {where}: connection lost ({_text(exc) or type(exc).__name__})")
    if isinstance(exc, IMAPClientError):
        return ImapProtocolProblem(f"IMAP {where}: server refused a command ({_text(exc)})")
    return ImapUnreachable(f"IMAP {where}: {type(exc).__name__}: {_text(exc)}")


def _text(exc: BaseException) -> str:
    text = str(exc)
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text.strip()


def _close(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:  # noqa: BLE001 - closing a broken socket may fail too; nothing to do
        pass


class _RedactLogin(logging.Filter):
    """The imaplib trace would print LOGIN's password; the trace is for debugging, not for secrets."""

    _pattern = re.compile(r"(LOGIN\s+\S+\s+)(\S+)", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOGIN" in message.upper():
            record.msg, record.args = self._pattern.sub(r"\1<redacted>", message), None
        return True


_trace_logger = logging.getLogger(TRACE_LOGGER)
if not any(isinstance(f, _RedactLogin) for f in _trace_logger.filters):
    _trace_logger.addFilter(_RedactLogin())


def _quiet_trace(client: IMAPClient) -> None:
    """imaplib formats every protocol line when its debug level is on; pay for that only with -v."""
    if not _trace_logger.isEnabledFor(logging.DEBUG):
        client._imap.debug = 0
