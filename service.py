"""``hypercare``: the command line, and the daemon behind ``hypercare run``.

Why the shape: every command is registered by its room (``tickets.cli``, ``intake.cli``
...) into one parser built here; every error a user can cause is a ``core.errors.UserError``
and ends as one line and exit 2 (a ``TryLater``: one line and exit 75); the daemon is the SMTP receiver
plus a ``schedule.Scheduler`` whose beat is exactly ``hypercare tick`` (run in a forked process of its own,
``notifier.beat_process``, so the intake has the daemon's interpreter lock to itself).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from core.errors import EX_TEMPFAIL, EX_USAGE, TryLater, UserError
from core.untrusted_text import PrintableLogFilter, PrintableStream, printable

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from app import App
    from dashboard.server import DashboardServer
    from intake.receive.imap_watch import ImapWatcher
    from intake.receive.smtp import SmtpReceiver
    from notifier.beat_process import BeatProcess

log = logging.getLogger("hypercare")

# Each room's commands, with their one-line help, so that ``hypercare --help`` and every command
# import only the room they use (issue 17: start under 0.3 s; SQLAlchemy alone takes ~0.4 s).
# tests/test_cli.py checks this table against what the rooms register.
COMMANDS: dict[str, tuple[str, str]] = {
    "tickets": ("tickets.cli", "list tickets"),
    "show": ("tickets.cli", "one ticket with messages, events and SLA times"),
    "purge": ("tickets.cli", "remove raw mail bytes of closed tickets and ignored mail older than a date"),
    "db": ("tickets.cli", "database maintenance"),
    "ingest": ("intake.cli", "ingest .eml files, folders, mbox, Maildir, or one message on stdin (-)"),
    "quarantine": ("intake.cli", "messages that could not be ingested"),
    "poll": ("intake.poll_cli", "poll the configured IMAP mailbox"),
    "classify": ("classifier.cli", "dry run: severity, role and the rules that fired for .eml files"),
    "rules": ("classifier.cli", "check, evaluate and replay classifier rules"),
    "outbox": ("notifier.outbox_cli", "inspect and drive the outbox"),
    "dashboard": ("dashboard.cli", "write the dashboard page as a static file (it is also served by 'run')"),
    "status": ("dashboard.cli", "health: database, mailboxes, relay, outbox (exit 1 if anything needs attention)"),
    "digest": ("notifier.digest_cli", "render a digest, or queue it for the stakeholders"),
    "exit": ("notifier.exit_cli", "the end of hypercare: record the steering decision"),
    "kb": ("handover.cli", "knowledge-base drafts from resolved tickets"),
    "export": ("handover.cli", "export data for the ongoing support tool"),
    "sla": ("notifier.sla_cli", "the SLA escalation ladder"),
    "secret": ("tickets.secret_cli", "the secret that signs reply addresses"),
}
COMMAND_ROOMS = tuple(dict.fromkeys(room for room, _help in COMMANDS.values()))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with *argv*, only the room of the command it names is imported (the others
    appear by name and help line, which is all ``--help`` shows)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="config file (default: $HYPERCARE_CONFIG, ./hypercare.toml, embedded defaults)")
    common.add_argument("--now", metavar="ISO-8601", default=argparse.SUPPRESS,
                        help="pretend the current time is this (rehearse SLA and digests); without an offset "
                             "it is local time in [hypercare] timezone")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug lines")
    parser = argparse.ArgumentParser(prog="hypercare", parents=[common],
                                     description="Hypercare Desk: email-driven support for CRM go-live hypercare")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = COMMAND_ROOMS if argv is None else [COMMANDS[a][0] for a in argv if a in COMMANDS][:1]
    registered: set[str] = set()
    for room in COMMAND_ROOMS:
        if room in wanted:
            before = set(sub.choices)
            importlib.import_module(room).register(sub, common)
            registered |= set(sub.choices) - before
    for name, (_room, help_line) in COMMANDS.items():
        if name not in registered:
            sub.add_parser(name, parents=[common], help=help_line)  # listed; never run (its room is not loaded)
    p = sub.add_parser("run", parents=[common], help="the service: SMTP intake, outbox, periodic jobs")
    p.set_defaults(handler=cmd_run)
    p = sub.add_parser("tick", parents=[common], help="run every periodic job once and exit (cron)")
    p.set_defaults(handler=cmd_tick)
    p = sub.add_parser("demo", parents=[common], help="a walk-through: sample mails through the real intake")
    p.set_defaults(handler=cmd_demo)
    return parser


def _database_unavailable(exc: BaseException) -> bool:
    """A locked or vanished database (SQLAlchemy ``OperationalError`` or ``InterfaceError``: the connection
    went away mid-command); asked without importing SQLAlchemy."""
    errors = sys.modules.get("sqlalchemy.exc")
    return errors is not None and isinstance(exc, errors.OperationalError | errors.InterfaceError)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    if not hasattr(args, "handler"):  # an option's value looked like another command: load every room
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(PrintableLogFilter())  # mail text reaches log lines: no escape codes, no forged lines
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
    try:
        app = make_app(args, daemon=args.handler is cmd_run)
        return int(args.handler(app, args) or 0)
    except UserError as exc:
        print(printable(f"hypercare: {_one_line(exc)}", one_line=True), file=sys.stderr)
        return EX_USAGE
    except TryLater as exc:
        print(printable(f"hypercare: {_one_line(exc)}; try again later", one_line=True), file=sys.stderr)
        return EX_TEMPFAIL
    except BrokenPipeError:  # before ``Exception``, which would otherwise take it
        # `hypercare tickets | head`: the reader left; not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if not _database_unavailable(exc):
            raise
        # Locked or vanished database in the middle of a command: temporary, say so in one line.
        print(f"hypercare: database unavailable ({_one_line(getattr(exc, 'orig', None) or exc)}); try again later",
              file=sys.stderr)
        return EX_TEMPFAIL
    except KeyboardInterrupt:
        return 130


def _one_line(exc: BaseException) -> str:
    """Drivers put the server's DETAIL and HINT on lines of their own; an operator's log wants one line."""
    return " ".join(str(exc).split())[:500] or type(exc).__name__


def make_app(args: argparse.Namespace, daemon: bool = False) -> App:
    from app import App
    from config import ConfigError, find_config_path, load_config
    from tickets.clock import Clock, FrozenClock, OffsetClock, SystemClock, parse_instant

    config = load_config(find_config_path(getattr(args, "config", None)))
    clock: Clock = SystemClock()
    if getattr(args, "now", None):
        try:
            start = parse_instant(args.now, config.hypercare.tz)
        except ValueError:
            raise ConfigError(f"--now {args.now!r}: expected ISO-8601 like 2026-11-23T09:00:00+01:00") from None
        # The daemon's time moves on from --now; one-shot commands see exactly --now.
        clock = OffsetClock(start) if daemon else FrozenClock(start)
    # Mail text is printed by most commands: control characters are shown, never obeyed by the terminal.
    # A drain that ends (``poll --once``, ``ingest``) need not watch template files for edits; ``run`` and a
    # looping ``poll`` do.
    one_shot = args.command == "ingest" or (args.command == "poll" and bool(getattr(args, "once", False)))
    return App(config, clock, out=PrintableStream(sys.stdout), err=PrintableStream(sys.stderr),  # type: ignore[arg-type]
               one_shot=one_shot)


# --- periodic jobs ------------------------------------------------------------------------------


def periodic_jobs(app: App) -> list[tuple[str, Callable[[], str]]]:
    """What one beat does, in order: the same list drives ``tick`` and the daemon's scheduler."""
    import intake.poll_cli
    import notifier.digest_cli
    import notifier.sla_cli

    def flush_outbox() -> str:
        report = app.outbox.flush(app.transport())
        return f"sent {report.sent}, retry {report.retried}, dead {report.dead}"

    # The mailbox first, so acknowledgements of new mail leave on the same beat.
    # Digests and the SLA sweep before the outbox, so what falls due leaves on the same beat.
    return [*intake.poll_cli.periodic_job(app), *notifier.digest_cli.periodic_job(app),
            *notifier.sla_cli.periodic_job(app), ("triage digest", app.triage_digest.run),
            ("page storms", app.escalator.storm.coalesce),
            ("outbox", flush_outbox)]


def cmd_tick(app: App, args: argparse.Namespace) -> int:
    for name, job in periodic_jobs(app):
        print(f"{name}: {job()}", file=app.out)
    return 0


class Daemon:
    """The SMTP receiver in its thread, the periodic jobs in a process of their own (else in the main thread)."""

    # The outbox is looked at every second so an acknowledgement leaves within a second or two of the
    # mail arriving; the other jobs (sweep, digests) need no more than one beat every 15 seconds.
    FAST_JOBS = {"outbox": 1.0}

    def __init__(self, app: App, beat_seconds: float = 15.0) -> None:
        import schedule

        self.app = app
        self.stop_event = threading.Event()
        self.receiver: SmtpReceiver | None = None
        self.imap: ImapWatcher | None = None
        self.dashboard: DashboardServer | None = None
        self.parse_pool: Executor | None = None
        self.beat: BeatProcess | None = None
        self.scheduler = schedule.Scheduler()
        self.beat_seconds = beat_seconds

    def start(self) -> None:
        import intake.poll_cli
        from dashboard.server import DashboardServer
        from intake.receive.smtp import SmtpReceiver
        from notifier.beat_process import BeatProcess

        app = self.app
        app.store  # noqa: B018 - create or migrate the schema before accepting mail
        app.pipeline  # noqa: B018 - compile rules and templates now: fail at start, not on first mail
        for name, job in periodic_jobs(app):
            if name == intake.poll_cli.JOB_NAME:  # the mailbox has a thread of its own (below)
                continue
            every = self.FAST_JOBS.get(name, self.beat_seconds)
            self.scheduler.every(every).seconds.do(self._guarded, name, job)
        # The beat runs in a process of its own (notifier.beat_process: the intake then has this process's
        # interpreter lock to itself); forked first, while this process has one thread, and before the parse
        # worker, whose pipe it would otherwise hold open.
        self.beat = BeatProcess.start(app, self._beat)
        if app.config.smtp_in.enabled:
            # Forked now, while this process has one thread; the SMTP intake parses and classifies there.
            from intake.parse_pool import start_parse_pool

            self.parse_pool = start_parse_pool(app, started=True, in_caller=True)
        if app.config.dashboard.enabled:  # first: a network-exposed dashboard without token refuses to start
            self.dashboard = DashboardServer(app).start()
        if app.config.smtp_in.enabled:
            self.receiver = SmtpReceiver(app.pipeline, app.config.support, app.config.smtp_in, self.parse_pool)
            self.receiver.start()
        # The mailbox gets its own thread (poll every poll_seconds or IDLE): it may block for minutes.
        self.imap = intake.poll_cli.start_watcher(app)

    def _beat(self, stop: threading.Event) -> None:
        """The periodic jobs until *stop* is set (in the beat process, or here when there is none)."""
        while not stop.is_set():
            self.scheduler.run_pending()
            stop.wait(0.2)

    def serve_forever(self) -> None:
        while self.beat is not None and not self.stop_event.is_set():
            if not self.beat.alive():  # killed or crashed: the beat goes on here (no fork with threads running)
                log.error("beat process ended (exit code %s); running the periodic jobs in process",
                          self.beat.process.exitcode)
                self.beat = None
                break
            self.stop_event.wait(0.5)
        self._beat(self.stop_event)

    def stop(self) -> None:
        self.stop_event.set()
        if self.receiver is not None:
            self.receiver.stop()
            self.receiver = None
        if self.parse_pool is not None:
            self.parse_pool.shutdown(cancel_futures=True)
            self.parse_pool = None
        if self.imap is not None:
            self.imap.stop()
            self.imap = None
        if self.dashboard is not None:
            self.dashboard.stop()
            self.dashboard = None
        if self.beat is not None:  # its outbox flush ends between two messages, its unsent rows put back
            self.beat.stop()
            self.beat = None

    def _guarded(self, name: str, job: Callable[[], str]) -> None:
        """One failing job (relay down, mailbox unreachable) never stops the others."""
        try:
            job()
        except Exception:
            log.exception("periodic job %s failed", name)


def cmd_run(app: App, args: argparse.Namespace) -> int:
    daemon = Daemon(app)
    try:
        daemon.start()
    except BaseException:
        daemon.stop()  # a part that did start (dashboard, SMTP) must not keep the process alive
        raise
    cfg = app.config
    parts = [f"SMTP intake {cfg.smtp_in.host}:{cfg.smtp_in.port} for {cfg.support.address}" if cfg.smtp_in.enabled
             else "SMTP intake off"]
    if daemon.imap is not None and cfg.imap is not None:
        parts.append(f"IMAP {cfg.imap.username}@{cfg.imap.host}/{cfg.imap.folder}")
    if cfg.dashboard.enabled:
        parts.append(f"dashboard http://{cfg.dashboard.host}:{cfg.dashboard.port}/")
    parts.append(f"database {app.store.safe_url}")
    print(f"hypercare running: {', '.join(parts)}; Ctrl-C to stop", file=app.out, flush=True)

    def on_signal(signum: int, _frame: Any) -> None:
        # The outbox stops between two messages and puts its unsent claimed rows back: a slow relay
        # once kept `run` busy for 92 s finishing a whole batch (systemd's TimeoutStopSec is 20).
        daemon.stop_event.set()
        app.outbox.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon.serve_forever()
    finally:
        daemon.stop()
        print("hypercare stopped", file=app.out, flush=True)
    return 0


def cmd_demo(app: App, args: argparse.Namespace) -> int:
    from demo import run_demo

    return run_demo(app)


if __name__ == "__main__":
    sys.exit(main())
