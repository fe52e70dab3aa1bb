"""CLI and daemon wiring for the mailbox: ``hypercare poll [--once]``.

Why here and not in service.py: the daemon only needs three hooks from this room:
``periodic_job`` (what ``tick`` runs), ``start_watcher`` (the thread ``run`` starts) and
``register`` (the commands); everything IMAP-specific stays inside ``intake``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any, TextIO

from core.errors import EX_TEMPFAIL
from core.progress import ProgressLine
from intake.parse_pool import ParsePool, fewer_collections, start_parse_pool
from intake.pipeline import IngestResult, IngestUnavailable
from intake.receive.imap_connect import ImapConfigProblem, ImapError, ImapNotConfigured
from intake.receive.imap_poller import ImapPoller, PollReport
from intake.receive.imap_watch import ImapWatcher

log = logging.getLogger("hypercare.imap")

JOB_NAME = "imap"  # the periodic job that the daemon replaces by its watcher thread


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("poll", parents=[common], help="poll the configured IMAP mailbox")
    p.add_argument("--once", action="store_true", help="drain the mailbox in batches and exit")
    p.set_defaults(handler=cmd_poll)


def build_poller(app: Any) -> ImapPoller:
    settings = app.config.imap
    if settings is None:
        raise ImapNotConfigured(f"{app.config.source}: no [imap] section; add host, username and password_env "
                                "(see docs/operations.md)")
    return ImapPoller(settings, app.store, app.pipeline, app.clock, app.environ)


# --- daemon hooks ---------------------------------------------------------------------------------


def periodic_job(app: Any) -> list[tuple[str, Callable[[], str]]]:
    """``[("imap", job)]`` when a mailbox is configured: one drain per beat of ``hypercare tick``."""
    if app.config.imap is None:
        return []

    def poll_job() -> str:
        poller = build_poller(app)
        try:
            return poller.poll().summary()
        except (ImapError, IngestUnavailable) as exc:
            return f"error: {exc}"  # recorded as mailbox health; the other jobs still run
        finally:
            poller.close()

    return [(JOB_NAME, poll_job)]


def start_watcher(app: Any) -> ImapWatcher | None:
    """The poller thread of ``hypercare run`` (None without [imap]); stop it with ``.stop()``."""
    if app.config.imap is None:
        return None
    return ImapWatcher(build_poller(app)).start()


# --- commands -------------------------------------------------------------------------------------


def cmd_poll(app: Any, args: argparse.Namespace) -> int:
    poller = build_poller(app)
    if not args.once:
        return _poll_forever(app, poller)
    progress = Progress(app.out)
    # Forked now, while this process has one thread (the drain talks to the server from a thread of its own).
    worker = start_parse_pool(app, started=True)
    poller.parse_pool = ParsePool(worker, app.opener) if worker is not None else None
    fewer_collections()
    try:
        report = poller.poll(on_batch=progress.batch)
    except ImapConfigProblem:
        raise  # a UserError: one line, exit 2
    except (ImapError, IngestUnavailable) as exc:
        progress.finish(None)
        print(f"error: {exc}; nothing was lost, the rest stays in the mailbox for the next poll", file=app.err)
        return EX_TEMPFAIL
    finally:
        poller.close()
        if poller.parse_pool is not None:
            poller.parse_pool.shutdown(cancel_futures=True)
            if poller.parse_pool.taken_back:
                log.info("imap %s: %d mails parsed in the storing process (the worker was busy)",
                         poller.key, poller.parse_pool.taken_back)
    progress.finish(report)
    return 0


def _poll_forever(app: Any, poller: ImapPoller) -> int:
    watcher = ImapWatcher(poller)
    mode = "IDLE when offered" if poller.settings.idle else f"every {poller.settings.poll_seconds}s"
    print(f"polling {poller.key} ({mode}); Ctrl-C to stop", file=app.out, flush=True)
    watcher.start()
    try:
        while watcher.thread is not None and watcher.thread.is_alive():
            watcher.thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    return 0


class Progress:
    """On a terminal: one updating line (count, rate, outcomes); otherwise plain summary lines only."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.line = ProgressLine(out)

    def batch(self, report: PollReport, results: list[IngestResult]) -> None:
        total = report.fetched + report.waiting
        counts = " ".join(f"{action} {n}" for action, n in sorted(report.outcomes.items()))
        self.line.show(f"{report.fetched}/{total} messages  {report.rate:.0f} msg/s  {counts}")

    def finish(self, report: PollReport | None) -> None:
        self.line.clear()
        if report is not None:
            print(report.summary(), file=self.out)
        self.out.flush()

