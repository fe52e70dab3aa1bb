"""Benchmark: hypercare beside django-helpdesk and Roundup, draining the same IMAP mailbox.

Usage (from the project root, Dovecot installed, PyPI reachable for the first run):

    .venv/bin/python bench/peers.py [--messages 500] [--rounds 3] [--venvs /tmp/hc-peers]

The peers are installed into throwaway virtualenvs outside the repository (``--venvs``, pinned:
django-helpdesk 2.6.1, Roundup 2.6.0; made once, reused).  Each round delivers the same generated
mails (``bench/ingest_imap.py``: every mail a new request from 50 senders) into a private Dovecot
and lets each contender empty it once, interleaved, each as its own process with its start-up
included, each on a fresh SQLite database, each sending its acknowledgement of a new ticket the
cheapest way it offers (hypercare: queued in its outbox; django-helpdesk: Django's in-memory mail
backend; Roundup: its mail gateway with nosy mail to a local SMTP sink):

    hypercare      hypercare poll --once
    django-helpdesk  manage.py get_email  (one queue polling the mailbox over IMAP)
    roundup        roundup-mailgw -C issue <tracker> imap support:<password>@127.0.0.1:<port>

Prints each contender's messages per second (median of the rounds) and hypercare's ratio to each,
with the load average: the ratios are the figures to compare across machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests")]

from bench_mails import generate  # noqa: E402
from dovecot import PASSWORD, PASSWORD_ENV, Dovecot  # noqa: E402
from ingest_imap import empty_processed, load_average  # noqa: E402

PINS = {"django-helpdesk": ["django-helpdesk==2.6.1"], "roundup": ["roundup==2.6.0"]}


def venv(base: Path, name: str) -> Path:
    """The peer's virtualenv, made and filled once (pip, pinned versions)."""
    home = base / name
    python = home / "bin" / "python"
    if not (home / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS[name]], check=True)
        (home / ".installed").write_text("ok\n")
    return python


# --- the contenders ------------------------------------------------------------------------------


def hypercare(workdir: Path, server: Dovecot, batch_size: int) -> list[str]:
    (workdir / "hypercare.toml").write_text(
        f'[support]\naddress = "support@example.com"\n[database]\nurl = "sqlite:///{workdir / "hc.db"}"\n'
        f'[intake]\nflood_per_hour = 1000000\n'
        f'[imap]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\nusername = "support"\n'
        f'password_env = "{PASSWORD_ENV}"\nbatch_size = {batch_size}\n')
    return [sys.executable, str(ROOT / "service.py"), "--config", str(workdir / "hypercare.toml"), "poll", "--once"]


DJANGO_SETTINGS = '''
SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
SITE_ID = 1
INSTALLED_APPS = ["django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
                  "django.contrib.sessions", "django.contrib.messages", "django.contrib.sites",
                  "django.contrib.humanize", "rest_framework", "helpdesk"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.messages.middleware.MessageMiddleware"]
HELPDESK_TEAMS_MODE_ENABLED = False
ROOT_URLCONF = "bench_urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
              "OPTIONS": {"context_processors": ["django.contrib.auth.context_processors.auth",
                                                 "django.contrib.messages.context_processors.messages",
                                                 "django.template.context_processors.request"]}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
DEFAULT_FROM_EMAIL = "support@example.com"
LOGGING = {"version": 1, "disable_existing_loggers": True}
'''


def django_helpdesk(workdir: Path, server: Dovecot, python: Path) -> list[str]:
    (workdir / "bench_settings.py").write_text(DJANGO_SETTINGS.replace("{db!r}", repr(str(workdir / "dh.db"))))
    (workdir / "bench_urls.py").write_text(
        "from django.urls import include, path\nurlpatterns = [path('helpdesk/', include('helpdesk.urls'))]\n")
    (workdir / "manage.py").write_text(textwrap.dedent("""\
        import os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_settings")
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
        """))
    env = {**os.environ, "PYTHONPATH": str(workdir)}
    subprocess.run([str(python), "manage.py", "migrate", "-v", "0"], cwd=workdir, env=env, check=True)
    setup = textwrap.dedent(f"""\
        import django; django.setup()
        from helpdesk.models import Queue
        Queue.objects.create(title="Support", slug="support", email_address="support@example.com",
                             allow_email_submission=True, email_box_type="imap", email_box_host="127.0.0.1",
                             email_box_port={server.port}, email_box_ssl=False, email_box_user="support",
                             email_box_pass={PASSWORD!r}, email_box_imap_folder="INBOX")
        """)
    subprocess.run([str(python), "-c", setup], cwd=workdir, env={**env, "DJANGO_SETTINGS_MODULE": "bench_settings"},
                   check=True)
    return [str(python), "manage.py", "get_email", "--quiet"]


# roundup-mailgw takes no IMAP port (``imaplib.IMAP4(server)``): the bench's Dovecot listens on a free
# one, so the gateway runs with the port given to imaplib first.  Nothing else is changed.
ROUNDUP_ON_PORT = """
import functools, imaplib, sys
imaplib.IMAP4.__init__ = functools.partialmethod(imaplib.IMAP4.__init__, port=int(sys.argv.pop(1)))
from roundup.scripts.roundup_mailgw import run
sys.exit(run())
"""


def roundup(workdir: Path, server: Dovecot, python: Path, smtp_port: int) -> list[str]:
    tracker = workdir / "tracker"
    admin = str(python.with_name("roundup-admin"))
    settings = (f"mail_domain=example.com,mail_host=127.0.0.1,mail_port={smtp_port},"
                "tracker_web=http://localhost/,nosy_messages_to_author=yes")
    subprocess.run([admin, "-i", str(tracker), "install", "classic", "sqlite", settings],
                   check=True, capture_output=True)
    # As a public support tracker is set up: strangers may open an issue by mail (a line of the classic
    # schema, commented out by default; without it every mail is answered "unknown user" and dropped).
    schema = tracker / "schema.py"
    schema.write_text(schema.read_text().replace("#db.security.addPermissionToRole('Anonymous', 'Email Access')",
                                                 "db.security.addPermissionToRole('Anonymous', 'Email Access')"))
    subprocess.run([admin, "-i", str(tracker), "initialise", "admin"], check=True, capture_output=True)
    return [str(python), "-c", ROUNDUP_ON_PORT, str(server.port), "-c", "issue", str(tracker), "imap",
            f"support:{PASSWORD}@127.0.0.1"]


class Sink:
    """A local SMTP server that accepts and forgets (Roundup mails its nosy list)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
                return "250 OK"

        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# --- the run -----------------------------------------------------------------------------------------


def drain(name: str, command: list[str], cwd: Path, server: Dovecot, messages: int) -> float:
    env = {**os.environ, PASSWORD_ENV: PASSWORD, "PYTHONPATH": str(cwd), "DJANGO_SETTINGS_MODULE": "bench_settings"}
    env.pop("HYPERCARE_CONFIG", None)
    started = time.perf_counter()
    with open(cwd / f"{name}.log", "wb") as log:
        result = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - started
    left = len(server.uids("INBOX"))
    if result.returncode != 0 or left:
        raise SystemExit(f"{name}: exit {result.returncode}, {left} of {messages} left in INBOX; see {cwd / name}.log")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--venvs", default=str(Path(tempfile.gettempdir()) / "hc-peers"),
                        help="where the peers' virtualenvs live (outside the repository)")
    parser.add_argument("--only", default="hypercare,django-helpdesk,roundup")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    base = Path(args.venvs)
    base.mkdir(parents=True, exist_ok=True)
    pythons = {name: venv(base, name) for name in names if name in PINS}
    sink = Sink()
    server = Dovecot(user="support")
    rates: dict[str, list[float]] = {name: [] for name in names}
    try:
        server.start()
        print(f"before: {load_average()}")
        for round_no in range(args.rounds):
            mails = generate(args.messages, args.senders, seed=100 + round_no)
            for name in names:
                workdir = Path(tempfile.mkdtemp(prefix=f"hc-peer-{name}-"))
                if name == "hypercare":
                    command = hypercare(workdir, server, 200)
                elif name == "django-helpdesk":
                    command = django_helpdesk(workdir, server, pythons[name])
                else:
                    command = roundup(workdir, server, pythons[name], sink.port)
                server.deliver(mails)
                seconds = drain(name, command, workdir, server, args.messages)
                empty_processed(server)
                rates[name].append(args.messages / seconds)
                print(f"[round {round_no}] {name:16s} {args.messages} mails in {seconds:6.2f}s = "
                      f"{args.messages / seconds:7.1f} msg/s; {load_average()}")
    finally:
        server.cleanup()
        sink.stop()
    medians = {name: statistics.median(values) for name, values in rates.items() if values}
    print(f"summary ({args.messages} mails, {args.rounds} rounds, medians); after: {load_average()}")
    for name, rate in medians.items():
        compared = "hypercare" in medians and name != "hypercare"
        ratio = f"; hypercare is {medians['hypercare'] / rate:.1f}x as fast" if compared else ""
        print(f"  {name:16s} {rate:7.1f} msg/s{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
