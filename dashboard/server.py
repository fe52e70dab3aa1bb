"""Serve the dashboard with waitress on ``[dashboard] host:port`` in its own thread of ``hypercare run``.

Why waitress: a production-grade, pure-Python WSGI server with no C build and no event loop
of ours to share; it runs its accept loop in one thread and requests on a small pool.
Why refuse to start: a dashboard on a non-loopback address without a token would show
every reporter's mail to the network; that is a configuration mistake, reported as one line.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from waitress.server import create_server

from config import ConfigError, DashboardSettings
from dashboard.web import DashboardApp

log = logging.getLogger("hypercare.dashboard")


class DashboardError(ConfigError):
    """The dashboard cannot start as configured; the message is the one line shown to the user."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def dashboard_token(settings: DashboardSettings, environ: Any) -> str | None:
    """The shared token from the environment variable named by ``token_env`` (None when unset)."""
    if not settings.token_env:
        if not is_loopback(settings.host):
            raise DashboardError(
                f"[dashboard] host {settings.host} is reachable from the network: set token_env to the name "
                f"of an environment variable holding an access token, or use host = \"127.0.0.1\"")
        return None
    token = environ.get(settings.token_env, "")
    if not token:
        if not is_loopback(settings.host):
            raise DashboardError(f"[dashboard] token_env: environment variable {settings.token_env} is empty "
                                 f"or unset; the dashboard on {settings.host} needs a token")
        return None
    if len(token) < 16:
        raise DashboardError(f"[dashboard] token_env: the token in {settings.token_env} is shorter than 16 "
                             f"characters; use a long random one (e.g. openssl rand -hex 24)")
    return token


class DashboardServer:
    """waitress in a daemon thread; ``start()`` binds (errors are one line), ``stop()`` joins."""

    def __init__(self, app: Any, settings: DashboardSettings | None = None, threads: int = 4) -> None:
        self.app = app
        self.settings = settings or app.config.dashboard
        self.threads = threads
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port) if self._server is not None else self.settings.port

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/"

    def start(self) -> DashboardServer:
        token = dashboard_token(self.settings, self.app.environ)
        # Build the shared components now, in one thread, not racing in the first requests.
        self.app.store  # noqa: B018
        self.app.sla  # noqa: B018
        self.app.renderer  # noqa: B018
        self.app.go_live  # noqa: B018
        wsgi = DashboardApp(self.app, token)
        try:
            self._server = create_server(wsgi, host=self.settings.host, port=self.settings.port,
                                         threads=self.threads, ident="hypercare", clear_untrusted_proxy_headers=True,
                                         expose_tracebacks=False)
        except OSError as exc:
            raise DashboardError(f"[dashboard] {self.settings.host}:{self.settings.port}: cannot listen "
                                 f"({exc.strerror or exc}); choose another port or stop what uses it") from None
        self._thread = threading.Thread(target=self._server.run, name="dashboard", daemon=True)
        self._thread.start()
        log.info("dashboard listening on %s token=%s", self.url, 'required' if token else 'off')
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # Close every channel from inside waitress's own loop thread, so its map empties and run() returns.
        def close_all() -> None:
            for channel in list(server._map.values()):
                try:
                    channel.close()
                except OSError:
                    pass

        try:
            server.trigger.pull_trigger(close_all)
        except OSError:  # the loop's wake-up pipe is already gone (seen once in a full suite run): close from here
            close_all()
        if self._thread is not None:
            self._thread.join(timeout)
        server.task_dispatcher.shutdown(timeout=timeout)
        self._thread = None
