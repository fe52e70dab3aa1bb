"""The dashboard answers only to its own names (DNS rebinding), keeps its CSP, and so does the --out file."""

from __future__ import annotations

import argparse
import dataclasses
import html
import http.client
import io
import re
import socket

import pytest
from mailkit import free_port

from config import Config, ConfigError, DashboardSettings, parse_config
from dashboard.pages import CONTENT_SECURITY_POLICY, CSP_META
from dashboard.server import DashboardServer
from dashboard.web import DashboardApp, allowed_hosts, host_of


def _app(make_app, tmp_path, **dashboard):  # type: ignore[no-untyped-def]
    settings = DashboardSettings(host="127.0.0.1", port=free_port(), **dashboard)
    return make_app(dataclasses.replace(Config(base_dir=tmp_path), dashboard=settings))


def _raw_get(port: int, host_header: bytes | None) -> tuple[int, str]:
    """One request with exactly the Host header given (None: none at all), over a plain socket."""
    request = b"GET /api/summary HTTP/1.1\r\n" + (b"Host: " + host_header + b"\r\n" if host_header is not None
                                                   else b"") + b"Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), head.decode("latin-1") + "\n" + body.decode("utf-8", "replace")


def test_served_dashboard_refuses_foreign_and_missing_hosts(make_app, tmp_path):
    app = _app(make_app, tmp_path, hostnames=("desk.example.com",))
    server = DashboardServer(app).start()
    try:
        port = server.port
        for good in (f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode(), b"desk.example.com",
                     b"DESK.example.com.:443"):
            status, text = _raw_get(port, good)
            assert status == 200, (good, text[:200])
            assert "Content-Security-Policy: " + CONTENT_SECURITY_POLICY in text
        for bad in (b"evil.example", f"evil.example:{port}".encode(), b"desk.example.com.evil.example",
                    b"127.0.0.2", b"[::2]:80"):
            status, text = _raw_get(port, bad)
            assert status == 421 and "[dashboard] hostnames" in text, bad
            assert '"open"' not in text  # nothing of the summary
        for malformed in (None, b"", b"a b", b"host\x00.example", b"x" * 5000, b"evil.example:99999999",
                          "h\u00f6st".encode()):
            status, _text = _raw_get(port, malformed)
            assert status == 400, malformed
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # what a browser sends by itself
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200 and "default-src 'none'" in response.getheader("Content-Security-Policy")
    finally:
        server.stop()


def test_wildcard_bind_answers_only_to_configured_names(make_app, tmp_path):
    settings = DashboardSettings(host="0.0.0.0", hostnames=("desk.example.com",))
    assert allowed_hosts(settings) == {"desk.example.com"}
    assert allowed_hosts(DashboardSettings(host="::1")) == {"localhost", "127.0.0.1", "::1"}
    assert host_of("[::1]:8025") == "::1" and host_of("Desk.Example.com.") == "desk.example.com"
    assert host_of("a\r\nb") is None and host_of("") is None


def test_hostnames_config_is_checked():
    config = parse_config({"dashboard": {"hostnames": ["desk.example.com", "[::1]"]}}, base_dir=None)  # type: ignore[arg-type]
    assert config.dashboard.hostnames == ("desk.example.com", "[::1]")
    for bad in (["http://desk.example.com"], ["desk.example.com:8025"], [1], ["a\nb"]):
        with pytest.raises(ConfigError, match=r"\[dashboard\] hostnames"):
            parse_config({"dashboard": {"hostnames": bad}}, base_dir=None)  # type: ignore[arg-type]


def test_out_file_carries_the_csp_meta_tag(make_app, tmp_path):
    from dashboard.cli import cmd_dashboard

    app = _app(make_app, tmp_path)
    out = tmp_path / "dashboard.html"
    cmd_dashboard(app, argparse.Namespace(out=str(out), json=False))
    page = out.read_text()
    [meta] = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert html.unescape(meta) == CSP_META and "default-src 'none'" in CSP_META and "script" not in CSP_META
    assert CSP_META == CONTENT_SECURITY_POLICY.replace("; frame-ancestors 'none'", "")  # all a meta tag can carry
    assert page.index("Content-Security-Policy") < page.index("<title>")  # before anything it governs
    # The served page keeps the header and has no meta (the header is the policy there).
    body = b"".join(DashboardApp(app)({"REQUEST_METHOD": "GET", "PATH_INFO": "/", "QUERY_STRING": "",
                                       "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO()}, lambda *a: None))
    assert b"http-equiv=\"Content-Security-Policy\"" not in body


def test_dns_rebinding_and_the_static_page_in_chromium(make_app, tmp_path):
    """A real browser: a foreign name resolved to the dashboard gets 421; the --out file's CSP stops a script."""
    from test_browser import start_chromium

    from dashboard.cli import cmd_dashboard

    app = _app(make_app, tmp_path)
    server = DashboardServer(app).start()
    driver = start_chromium(tmp_path, "--host-resolver-rules=MAP rebind.evil.example 127.0.0.1")
    try:
        driver.get(f"http://rebind.evil.example:{server.port}/api/summary")
        assert "Misdirected" in driver.page_source or "does not answer to that host" in driver.page_source
        assert '"open"' not in driver.page_source
        driver.get(f"http://127.0.0.1:{server.port}/")
        assert driver.title.startswith("Hypercare dashboard")
        # The static page with a script slipped in (as if escaping had failed): the meta CSP keeps it inert.
        out = tmp_path / "dashboard.html"
        cmd_dashboard(app, argparse.Namespace(out=str(out), json=False))
        injected = "<script>document.title = 'pwned';</script>"
        page = out.read_text().replace("<title>", injected + "<title>", 1)
        (tmp_path / "with-meta.html").write_text(page)
        (tmp_path / "without-meta.html").write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>',
                                                           "", page))
        driver.get((tmp_path / "with-meta.html").as_uri())
        assert driver.title.startswith("Hypercare dashboard")
        driver.get((tmp_path / "without-meta.html").as_uri())
        assert driver.title == "pwned"  # the control: without the meta tag the script runs
    finally:
        driver.quit()
        server.stop()
