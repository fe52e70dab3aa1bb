"""The dashboard as a tiny WSGI application: routes, access token, read-only methods, safe headers.

Why plain WSGI: five GET routes need no framework; any WSGI server can host it (the daemon
uses waitress, see ``dashboard.server``).  Nothing here writes: every request reads through
``Store.read()``; any method other than GET/HEAD is ``405``.  The optional shared token is
taken from ``Authorization: Bearer``, a ``?token=`` query (then remembered in an HttpOnly
cookie so the page's links and its meta refresh keep working) or that cookie; ``/healthz``
stays open for load balancers and monitors and reveals nothing but the reason, and ``/status`` (the
public status page) is for every user: it carries nothing private by construction.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

from config import DashboardSettings
from dashboard.health import check_health
from dashboard.pages import CONTENT_SECURITY_POLICY, load_ticket, overview_html, status_html, ticket_html
from dashboard.public_status import StatusDaysProblem, parse_days
from dashboard.summary import DashboardContext, build_summary, to_json
from tickets.search import FilterProblem, parse_filter, search_tickets
from tickets.views import ticket_detail

log = logging.getLogger("hypercare.dashboard")

COOKIE = "hypercare_dashboard"
MAX_QUERY = 4096  # bytes of query string any page needs
MAX_FIELDS = 20
SECURITY_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]
_HOST = re.compile(r"(?:\[(?P<ipv6>[0-9a-f:.]{2,45})\]|(?P<name>[a-z0-9.-]{1,253}))(?::\d{1,5})?")
_TICKET = re.compile(r"^/tickets/(?P<key>[A-Za-z0-9]{1,10}-\d{1,12})/?$")
_API_TICKET = re.compile(r"^/api/tickets/(?P<key>[A-Za-z0-9]{1,10}-\d{1,12})/?$")

# Answered without the token: /healthz (the reason only) and /status (the public status page, issue 16:
# built from fields safe for every user, see dashboard.public_status).
PUBLIC_PATHS = ("/healthz", "/status", "/status/")

StartResponse = Callable[..., Any]


class Response:
    def __init__(self, status: int, body: bytes | str, content_type: str = "text/html; charset=utf-8",
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.headers = [("Content-Type", content_type), *SECURITY_HEADERS, *(headers or [])]


def json_response(status: int, data: Any) -> Response:
    return Response(status, json.dumps(to_json(data), indent=2, ensure_ascii=False),
                    "application/json; charset=utf-8")


def text_response(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, text + "\n", "text/plain; charset=utf-8", headers)


def allowed_hosts(settings: DashboardSettings) -> frozenset[str]:
    """The Host names a request may carry: ``[dashboard] hostnames``, the bound address, and the
    loopback names when bound to loopback.  A bound wildcard (0.0.0.0, ::) is no name at all."""
    names = {h.lower().rstrip(".") for h in settings.hostnames}
    bound = settings.host.strip("[]").lower()
    if bound not in ("0.0.0.0", "::", ""):
        names.add(bound)
    if bound in ("localhost", "127.0.0.1", "::1") or bound.startswith("127."):
        names.update({"localhost", "127.0.0.1", "::1"})
    return frozenset(names)


def host_of(header: str) -> str | None:
    """The host part of a Host header ("desk.example.com:8025", "[::1]:8025"), None when malformed."""
    header = header.strip().lower()
    match = _HOST.fullmatch(header)
    if match is None:
        return None
    return (match["ipv6"] or match["name"]).rstrip(".")


class DashboardApp:
    """WSGI callable. *app* is the composition root (``app.App``); *token* None = no access control.

    Why the Host check (issue 13): without it, a page on another site can rebind its DNS name to
    the operator's forwarded port and read the dashboard through the operator's own browser; a
    request naming a host that is not ours gets 421 (400 when the header is missing or malformed).
    """

    def __init__(self, app: Any, token: str | None = None) -> None:
        self.app = app
        self.token = token or None
        self.hosts = allowed_hosts(app.config.dashboard)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "/") or "/"
        extra: list[tuple[str, str]] = []
        host = host_of(environ.get("HTTP_HOST", ""))
        if host is None:
            response = text_response(400, "bad request: a Host header naming this dashboard is required")
        elif host not in self.hosts:
            log.warning("dashboard refused Host %r (not in [dashboard] hostnames or the bound address)",
                        host[:100])
            response = text_response(421, "misdirected request: this dashboard does not answer to that host name; "
                                          "add it to [dashboard] hostnames")
        elif method not in ("GET", "HEAD"):
            response = text_response(405, "method not allowed: the dashboard is read-only",
                                     [("Allow", "GET, HEAD")])
        elif path not in PUBLIC_PATHS and not self._authorised(environ, extra):
            response = text_response(401, "token required: send 'Authorization: Bearer <token>' or ?token=",
                                     [("WWW-Authenticate", 'Bearer realm="hypercare"')])
        else:
            try:
                query = self._query(environ)
            except ValueError:  # more than any page takes: not a search, a flood
                query = None
            try:
                response = (self._route(path, query) if query is not None else text_response(
                    400, f"query too large: at most {MAX_FIELDS} parameters and {MAX_QUERY} bytes"))
            except Exception:
                log.exception("dashboard %s %s failed", method, path)
                response = text_response(500, "internal error; see the service log")
        response.headers.extend(extra)
        response.headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", response.headers)
        return [b""] if method == "HEAD" else [response.body]

    # --- access ------------------------------------------------------------------------------
    def _authorised(self, environ: dict[str, Any], extra: list[tuple[str, str]]) -> bool:
        if self.token is None:
            return True
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.lower().startswith("bearer ") and self._same(header[7:].strip()):
            return True
        query = parse_qs(environ.get("QUERY_STRING", "")).get("token", [])
        if query and self._same(query[0]):
            extra.append(("Set-Cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"))
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is just not a token
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and self._same(morsel.value)

    def _same(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    def _query(environ: dict[str, Any]) -> dict[str, list[str]]:
        """The query string, capped: a megabyte of parameters is refused before anything reads it."""
        raw = environ.get("QUERY_STRING", "")
        if len(raw) > MAX_QUERY:
            raise ValueError("query string too long")
        return parse_qs(raw, max_num_fields=MAX_FIELDS)

    # --- routes ------------------------------------------------------------------------------
    def _route(self, path: str, query: dict[str, list[str]]) -> Response:
        if path == "/healthz":
            health = check_health(self.app)
            return json_response(200 if health.ok else 503, health.to_dict())
        if path in ("/", "/index.html"):
            try:
                wanted = parse_filter(query)
            except FilterProblem as problem:
                return text_response(400, str(problem))
            with self.app.store.read() as session:
                return Response(200, overview_html(session, self.context(), self.app.renderer, wanted=wanted))
        if path in ("/status", "/status/"):
            try:
                days = parse_days(query.get("days"), self.app.config.dashboard.status_days)
            except StatusDaysProblem as problem:
                return text_response(400, str(problem))
            with self.app.store.read() as session:
                return Response(200, status_html(session, self.context(), self.app.renderer, days=days))
        if path == "/api/summary":
            with self.app.store.read() as session:
                return json_response(200, build_summary(session, self.context()))
        if path in ("/api/tickets", "/api/tickets/"):
            return self._api_tickets(query)
        match = _TICKET.match(path) or _API_TICKET.match(path)
        if match:
            with self.app.store.read() as session:
                ticket = load_ticket(session, match["key"])
                if ticket is None:
                    return text_response(404, f"no ticket {match['key'].upper()}")
                if path.startswith("/api/"):
                    return json_response(200, ticket_detail(ticket))
                return Response(200, ticket_html(session, self.context(), self.app.renderer, ticket))
        return text_response(404, "not found; try /, /status, /api/summary, /api/tickets or /healthz")

    def _api_tickets(self, query: dict[str, list[str]]) -> Response:
        try:
            wanted = parse_filter(query)
        except FilterProblem as problem:
            return text_response(400, str(problem))
        with self.app.store.read() as session:
            return json_response(200, search_tickets(session, wanted, limit=None))

    def context(self) -> DashboardContext:
        app = self.app
        return DashboardContext(config=app.config, sla=app.sla, go_live=app.go_live, now=app.clock.now())
