"""A private Dovecot IMAP server for tests and benchmarks: own config, 127.0.0.1, free high port.

Why a real server: the poller's promises (nothing marked read before commit, MOVE after
commit, UIDVALIDITY, reconnects) are promises about an IMAP server's behaviour, so they
are proven against one, not against a mock.

Layout: everything lives in one world-traversable folder under the system temp dir
(pytest's own temp dirs are mode 0700, and Dovecot's mail processes run as an
unprivileged user that must traverse every parent of its home).  As root the mail user
is ``nobody``; as another user, every Dovecot process runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from imapclient import IMAPClient
from ports import free_port

from config import ImapSettings

PASSWORD = "s3cret-imap"
PASSWORD_ENV = "HC_TEST_IMAP_PASSWORD"
OAUTH_TOKEN = "ya29.test-oauth2-token"


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or (("/usr/sbin/dovecot") if Path("/usr/sbin/dovecot").exists() else None)


class Dovecot:
    """Start, kill, restart and feed one private Dovecot; ``settings()`` is the matching [imap] section."""

    def __init__(self, user: str = "support", ssl: bool = False) -> None:
        self.binary = dovecot_binary()
        if self.binary is None:
            raise RuntimeError("dovecot not installed")
        self.user = user
        self.ssl = ssl
        self.port = free_port()  # plain IMAP, and STARTTLS when ssl=True
        self.ssl_port = free_port() if ssl else 0  # implicit TLS (imaps) when ssl=True
        self.root = Path(tempfile.mkdtemp(prefix="hcdove-", dir="/tmp"))
        self.root.chmod(0o755)
        self.home = self.root / "home" / user
        self.maildir = self.home / "Maildir"
        if os.geteuid() == 0:
            entry = pwd.getpwnam("nobody")
            self.mail_user, self.mail_group = "nobody", _group_name(entry.pw_gid)
            self.login_user, self.internal_user = "dovenull", "dovecot"
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        else:
            me = pwd.getpwuid(os.geteuid())
            self.mail_user, self.mail_group = me.pw_name, _group_name(me.pw_gid)
            self.login_user = self.internal_user = me.pw_name
            self.uid, self.gid = me.pw_uid, me.pw_gid
        for sub in ("cur", "new", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        for path in (self.root / "home", self.home, self.maildir, *(self.maildir / s for s in ("cur", "new", "tmp"))):
            path.chmod(0o755 if path in (self.root / "home",) else 0o700)
            os.chown(path, self.uid, self.gid)
        self.config_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._write_config()

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Dovecot:
        assert self.binary is not None
        self.process = subprocess.Popen([self.binary, "-F", "-c", str(self.config_path)],
                                        stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"),
                                        start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.settimeout(2)
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.05)
        log = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"dovecot did not listen on {self.port}: {log}")

    def kill(self) -> None:
        """SIGKILL the whole server (master and every imap process): connections drop mid-command."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self.process = None
        _wait_port_free(self.port)

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()
        self.process = None
        _wait_port_free(self.port)

    def restart(self) -> Dovecot:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- what the poller needs ---------------------------------------------------------------------
    def settings(self, **overrides: object) -> ImapSettings:
        security = str(overrides.get("security", "none"))
        base = ImapSettings(host="127.0.0.1", port=self.ssl_port if security == "ssl" else self.port,
                            security=security,
                            username=self.user, password_env=PASSWORD_ENV, folder="INBOX",
                            processed_folder="Processed", idle=False, poll_seconds=1, batch_size=50, timeout=5.0)
        return replace(base, **overrides)  # type: ignore[arg-type]

    @property
    def environ(self) -> dict[str, str]:
        return {PASSWORD_ENV: PASSWORD, "HC_TEST_OAUTH_TOKEN": OAUTH_TOKEN}

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.user, PASSWORD)
        return client

    # --- feeding and inspecting ------------------------------------------------------------------
    def append(self, mails: Iterable[bytes], folder: str = "INBOX") -> None:
        """APPEND through IMAP, as another client would."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in mails:
                client.append(folder, raw)
        finally:
            client.logout()

    def deliver(self, mails: Iterable[bytes]) -> int:
        """Write straight into INBOX's Maildir ``new/`` as a local delivery agent does (fast, for bulk)."""
        count = 0
        tmp, new = self.maildir / "tmp", self.maildir / "new"
        stamp = int(time.time())
        for raw in mails:
            name = f"{stamp}.{uuid.uuid4().hex}.hc"
            path = tmp / name
            path.write_bytes(raw)
            os.chown(path, self.uid, self.gid)
            path.rename(new / name)
            count += 1
        return count

    def uids(self, folder: str = "INBOX") -> list[int]:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))
        finally:
            client.logout()

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        client = self.client()
        try:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            return dict(client.get_flags(uids)) if uids else {}
        finally:
            client.logout()

    def uidvalidity(self, folder: str = "INBOX") -> int:
        client = self.client()
        try:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])
        finally:
            client.logout()

    def set_uidvalidity(self, value: int, folder: str = "INBOX") -> None:
        """Change the mailbox's UIDVALIDITY as a server migration or rebuild would (doveadm)."""
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        subprocess.run([doveadm, "-c", str(self.config_path), "mailbox", "update", "-u", self.user,
                        "--uid-validity", str(value), folder], check=True, capture_output=True)

    # --- config ----------------------------------------------------------------------------------------
    def _write_config(self) -> None:
        ssl_lines = "ssl = no\n"
        listener = f"  inet_listener imap {{\n    address = 127.0.0.1\n    port = {self.port}\n  }}\n" \
                   "  inet_listener imaps {\n    port = 0\n  }\n"
        if self.ssl:
            cert, key = self._self_signed()
            ssl_lines = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"
            listener = (f"  inet_listener imap {{\n    address = 127.0.0.1\n    port = {self.port}\n  }}\n"
                        "  inet_listener imaps {\n"
                        f"    address = 127.0.0.1\n    port = {self.ssl_port}\n    ssl = yes\n  }}\n")
        (self.root / "run").mkdir(exist_ok=True)
        self.config_path.write_text(f"""
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
protocols = imap
listen = 127.0.0.1
{ssl_lines}
disable_plaintext_auth = no
auth_failure_delay = 0
auth_mechanisms = plain login xoauth2
mail_location = maildir:~/Maildir
mail_uid = {self.mail_user}
mail_gid = {self.mail_group}
first_valid_uid = 1
first_valid_gid = 1
default_login_user = {self.login_user}
default_internal_user = {self.internal_user}
mail_max_userip_connections = 50
imap_idle_notify_interval = 1 secs
passdb {{
  driver = static
  args = password={PASSWORD}
}}
passdb {{
  driver = static
  mechanisms = xoauth2
  args = password={OAUTH_TOKEN}
}}
userdb {{
  driver = static
  args = uid={self.mail_user} gid={self.mail_group} home={self.root}/home/%u
}}
service imap-login {{
{listener}}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
""")

    def _self_signed(self) -> tuple[Path, Path]:
        cert, key = self.root / "cert.pem", self.root / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        return cert, key

    @property
    def ca_file(self) -> Path:
        return self.root / "cert.pem"


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def _wait_port_free(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                pass
        except OSError:
            return
        time.sleep(0.05)
