"""The poller's own thread inside ``hypercare run``: poll every poll_seconds, or wait in IDLE.

Why a thread: IDLE blocks on the socket for many minutes, and a slow or unreachable
server must never delay the outbox, the SLA sweep or SMTP intake; the rest of the
daemon keeps its beat whatever the mailbox does.  Failures back off exponentially
(capped) and are recorded as mailbox health by the poller; the thread never dies of
them.  IDLE is re-entered before the server's inactivity timeout (RFC 2177: at most
29 minutes; we use 24), and each re-entry polls first, so nothing waits on a lost
notification for longer than that.
"""

from __future__ import annotations

import logging
import threading
import time

from imapclient.exceptions import IMAPClientError

from intake.pipeline import IngestUnavailable
from intake.receive.imap_connect import ImapConfigProblem, ImapError, ImapUnreachable, translate
from intake.receive.imap_poller import ImapPoller

log = logging.getLogger("hypercare.imap")

IDLE_REFRESH_SECONDS = 24 * 60.0
WAKE_SECONDS = 0.5  # how often a waiting IDLE checks the stop event
# imapclient's idle_check swallows EOF and socket errors and returns [] at once: a dead server looks like
# "no news" returned faster than the wait.  This many such returns in a row mean the connection is gone
# (it once spun a CPU for 24 minutes, storing nothing, while status said "ok").
DEAD_AFTER_QUICK_RETURNS = 3


class ImapWatcher:
    """Runs ``poller.poll()`` forever in a daemon thread until ``stop()``."""

    def __init__(self, poller: ImapPoller, *, idle_refresh: float = IDLE_REFRESH_SECONDS,
                 backoff_base: float = 5.0, backoff_max: float = 300.0) -> None:
        self.poller = poller
        self.settings = poller.settings
        self.idle_refresh = idle_refresh
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.polls = 0  # completed polls (tests and the log read it)
        self.failures = 0  # consecutive failures; drives the backoff

    def start(self) -> ImapWatcher:
        self.thread = threading.Thread(target=self.run, name=f"imap {self.poller.key}", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout)
            self.thread = None
        self.poller.close()

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poller.poll()
                self.polls += 1
                self.failures = 0
                if self.settings.idle and self.poller.can_idle():
                    self._idle_or_record()
                else:
                    self.stop_event.wait(max(self.settings.poll_seconds, 0.1))
            except (ImapError, IngestUnavailable, OSError, IMAPClientError, EOFError) as exc:
                # poll() has logged and recorded it already; IDLE errors are translated here.
                if not isinstance(exc, ImapError | IngestUnavailable):
                    log.warning("imap %s: %s", self.poller.key, translate(exc, self.poller.key))
                    self.poller.close()
                self._back_off(config_problem=isinstance(exc, ImapConfigProblem))
            except Exception:
                log.exception("imap %s: poll crashed", self.poller.key)
                self.poller.close()
                self._back_off(config_problem=False)

    def backoff_delay(self) -> float:
        """Exponential from backoff_base, capped at backoff_max (config problems wait the cap)."""
        return min(self.backoff_max, self.backoff_base * 2 ** max(self.failures - 1, 0))

    def _back_off(self, config_problem: bool) -> None:
        self.failures += 1
        delay = self.backoff_max if config_problem else self.backoff_delay()
        log.debug("imap %s: retrying in %.0fs (failure %s)", self.poller.key, delay, self.failures)
        self.stop_event.wait(delay)

    def _idle_or_record(self) -> None:
        """IDLE; a connection lost meanwhile is logged once and recorded as mailbox health, then raised."""
        try:
            self._idle()
        except (ImapError, OSError, IMAPClientError, EOFError) as exc:
            error = translate(exc, self.poller.key)
            self.poller.record_lost(str(error))
            raise error from None

    def _idle(self) -> None:
        """Wait for EXISTS/RECENT, the stop event, or the refresh deadline; then the loop polls."""
        client = self.poller.client
        assert client is not None
        client.idle()
        deadline = time.monotonic() + self.idle_refresh
        quick = 0  # consecutive empty answers that came back faster than the wait: a closed socket
        try:
            while not self.stop_event.is_set() and time.monotonic() < deadline:
                asked = time.monotonic()
                responses = client.idle_check(timeout=WAKE_SECONDS)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    log.debug("imap %s: IDLE woke up: %r", self.poller.key, responses)
                    break
                quick = quick + 1 if not responses and time.monotonic() - asked < WAKE_SECONDS / 2 else 0
                if quick >= DEAD_AFTER_QUICK_RETURNS:
                    raise ImapUnreachable(f"IMAP {self.poller.key}: connection lost during IDLE "
                                          "(the server closed it)")
        except BaseException:
            self.poller.close()  # DONE on a dead socket would only raise again
            raise
        client.idle_done()
