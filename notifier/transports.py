"""Where rendered mail goes: an SMTP relay, or a local Maildir (the embedded default).

Why one interface: the outbox worker must not care; it opens a transport for a
batch, sends bytes, and learns from the exception type whether to retry
(``TransientFailure``) or give up (``PermanentFailure``).
"""

from __future__ import annotations

import errno
import logging
import mailbox
import os
import smtplib
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from config import SmtpOutSettings
from core.errors import HypercareError

log = logging.getLogger("hypercare.transport")


class TransientFailure(HypercareError):
    """Try again later: 4xx, connection refused or dropped, timeout."""


class RelayUnavailable(TransientFailure):
    """The relay itself cannot be used now (unreachable, refused, 4xx/5xx greeting, login refused).

    Not the message's fault: the outbox backs off but never gives a message up for it,
    and stops the batch instead of knocking once per message on a closed door.
    """


class PermanentFailure(HypercareError):
    """Never retry: the server answered 5xx; the message is its answer."""


# Recipients the relay refused while accepting the message for the others: address -> (code, answer).
Refused = dict[str, tuple[int, str]]


# Called once per message at the last moment before the relay could accept it (SMTP: before DATA); it may
# raise, and then the message is not given to the relay.  The outbox waits there for the previous mail's
# "sent" record, which is written while this mail's MAIL and RCPT are on the wire.
BeforeData = Callable[[], None]


class Transport(Protocol):
    def open(self) -> None: ...
    def send(self, sender: str, recipients: Sequence[str], data: bytes,
             before_data: BeforeData | None = None) -> Refused: ...
    def close(self) -> None: ...


class MaildirTransport:
    """Writes each message into a Maildir (``new/``), as a local mail client would find it.

    ``deliver`` writes a whole batch with one wait for the disk (the outbox uses it): each file is
    written to ``tmp/`` under a name fixed by the outbox row, all are fsynced at once, renamed into
    ``new/``, and the directory is fsynced once.  A name already in ``new/`` (or ``cur/``) was delivered
    before a crash cut the batch's "sent" record short: it is not written again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072").replace(".", "_") or "localhost"

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)  # Maildir(create=True) makes only the last folder
        self._box = mailbox.Maildir(str(self.path), create=True)

    def send(self, sender: str, recipients: Sequence[str], data: bytes,
             before_data: BeforeData | None = None) -> Refused:
        if before_data is not None:
            before_data()
        try:
            self._box.add(data)
        except OSError as exc:
            raise _disk_failure(self.path, exc) from None
        return {}

    def deliver(self, mails: Sequence[tuple[str, bytes]], *, maybe_delivered: bool = False) -> list[Exception | None]:
        """Write *mails* (``(name, bytes)``; the name unique and the same on every attempt) durably into ``new/``.

        Returns one entry per mail: None when it is in ``new/`` (now or from an attempt before a crash),
        else its ``TransientFailure``.  A full disk raises ``RelayUnavailable`` for the whole batch (nothing
        of it is in ``new/``).  *maybe_delivered*: some of the names may have been delivered already and
        moved to ``cur/`` by a mail client since (``cur/`` is listed once for them).
        """
        tmp, new, cur = self.path / "tmp", self.path / "new", self.path / "cur"
        names = [f"{_safe_name(name)}.{self._host}" for name, _data in mails]
        there: set[str] = set()
        if maybe_delivered:
            try:
                there = {entry.split(":", 1)[0] for entry in os.listdir(cur)}
            except OSError:
                pass
        outcomes: list[Exception | None] = [None] * len(mails)
        written: list[tuple[int, int]] = []  # (index, open file descriptor)
        try:
            for index, (name, (_key, data)) in enumerate(zip(names, mails, strict=True)):
                if name in there or os.path.exists(new / name):
                    continue  # delivered before a crash: the batch's record is what was missing
                try:
                    written.append((index, self._write_file(tmp / name, data)))
                except OSError as exc:
                    failure = _disk_failure(self.path, exc)
                    if isinstance(failure, RelayUnavailable):
                        raise failure from None  # nothing of this batch goes to new/ now
                    outcomes[index] = failure
            # One wait for the disk instead of one per mail: concurrent fsyncs share the journal's commits.
            with ThreadPoolExecutor(max_workers=min(8, len(written) or 1)) as sync:
                synced = list(sync.map(_fsync_quietly, [fd for _index, fd in written]))
            for (index, fd), error in zip(written, synced, strict=True):
                os.close(fd)
                if error is None:
                    try:
                        os.rename(tmp / names[index], new / names[index])
                        continue
                    except OSError as exc:
                        error = exc
                outcomes[index] = _disk_failure(self.path, error)
                _unlink_quietly(tmp / names[index])
            written = []
            _fsync_dir(new)
        except BaseException:
            for index, fd in written:
                os.close(fd)
                _unlink_quietly(tmp / names[index])
            raise
        full = [outcome for outcome in outcomes if isinstance(outcome, RelayUnavailable)]
        if full:  # the rows go back; those renamed into new/ already are found there next time
            raise full[0]
        return outcomes

    @staticmethod
    def _write_file(path: Path, data: bytes) -> int:
        """*data* into a new file at *path* (a leftover of a crashed attempt is overwritten); its open fd."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            raise
        return fd

    def close(self) -> None:
        self._box = None  # type: ignore[assignment]


def _disk_failure(path: Path, exc: OSError) -> TransientFailure:
    """A full disk is the outbox's trouble, not the mail's: back off, count no attempt, never dead."""
    failure = RelayUnavailable if exc.errno in (errno.ENOSPC, errno.EDQUOT) else TransientFailure
    return failure(f"maildir {path}: {exc.strerror or exc}")


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:200]


def _fsync_quietly(fd: int) -> OSError | None:
    try:
        os.fsync(fd)
    except OSError as exc:
        return exc
    return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class _HookedData:
    """``smtplib``'s client with ``before_data`` called just before the DATA command of ``sendmail``.

    Why there: until DATA the relay cannot accept the message, and MAIL FROM and RCPT TO before it
    are round trips the caller can use (the outbox records the previous mail meanwhile).
    """

    before_data: BeforeData | None = None

    def data(self, msg: bytes | str) -> tuple[int, bytes]:
        if self.before_data is not None:
            self.before_data()
        return super().data(msg)  # type: ignore[misc]


class _Smtp(_HookedData, smtplib.SMTP):
    pass


class _SmtpSsl(_HookedData, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    """An SMTP relay, one connection reused for a whole batch."""

    def __init__(self, settings: SmtpOutSettings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self._smtp: _Smtp | _SmtpSsl | None = None

    def open(self) -> None:
        s = self.settings
        try:
            if s.security == "ssl":
                smtp: _Smtp | _SmtpSsl = _SmtpSsl(s.host, s.port, timeout=s.timeout,
                                                  context=ssl.create_default_context())
            else:
                smtp = _Smtp(s.host, s.port, timeout=s.timeout)
                if s.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
            if s.username:
                smtp.login(s.username, self.environ.get(s.password_env, "") if s.password_env else "")
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong password is fixed in the config, then everything queued goes out: nothing dies of it.
            raise RelayUnavailable(f"relay {s.host}:{s.port} refused login: {_answer(exc)}") from None
        except smtplib.SMTPResponseException as exc:
            raise RelayUnavailable(f"relay {s.host}:{s.port} answered {_answer(exc)}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise RelayUnavailable(f"relay {s.host}:{s.port} unreachable: {exc or type(exc).__name__}") from None
        self._smtp = smtp

    def send(self, sender: str, recipients: Sequence[str], data: bytes,
             before_data: BeforeData | None = None) -> Refused:
        """Send one message; return the recipients refused while others were accepted.

        4xx (including 421 "closing") -> TransientFailure; 5xx -> PermanentFailure with the
        server's answer; a dropped connection or a timeout -> TransientFailure, and the next
        message reconnects (RelayUnavailable if that fails).  *before_data* raising: the
        connection is closed (the relay discards the unfinished mail) and its error goes up as it is.
        """
        if self._smtp is None:
            self.open()
        assert self._smtp is not None
        self._smtp.before_data = before_data
        try:
            refused = self._smtp.sendmail(sender, list(recipients), data)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items())
            self._reset()
            raise (TransientFailure if any(c < 500 for c in codes) else PermanentFailure)(detail) from None
        except smtplib.SMTPServerDisconnected as exc:
            self._drop()
            raise TransientFailure(f"connection lost: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            self._reset()
            raise _classify(exc.smtp_code, _answer(exc)) from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            self._drop()
            raise TransientFailure(f"connection lost: {exc or type(exc).__name__}") from None
        except BaseException:
            self._drop()  # before_data failed (or we were interrupted) mid-transaction: the relay discards it
            raise
        finally:
            if self._smtp is not None:
                self._smtp.before_data = None
        return {rcpt: (code, _text(msg)) for rcpt, (code, msg) in refused.items()}

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
        self._smtp = None

    def _reset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            except OSError:
                pass
        self._smtp = None


def transport_for(settings: SmtpOutSettings, maildir: Path, environ: Mapping[str, str] | None = None) -> Transport:
    """SMTP when ``[smtp_out] host`` is set, else the Maildir; *environ* holds the password variable."""
    return SmtpTransport(settings, environ) if settings.host else MaildirTransport(maildir)


def _text(message: bytes | str) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def _answer(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


def _classify(code: int, answer: str) -> Exception:
    return PermanentFailure(answer) if code >= 500 else TransientFailure(answer)
