"""The dashboard: every page and endpoint on a seeded history, escaping, read-only, token, health, server."""

from __future__ import annotations

import dataclasses
import io
import json
import socket
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from test_dashboard_seed import NOW, XSS_SUBJECT, build_seeded_app

from config import DashboardSettings, ImapSettings
from dashboard.server import DashboardError, DashboardServer, dashboard_token
from dashboard.web import COOKIE, DashboardApp
from tickets.health import mailbox_key
from tickets.models import Base, ImapState
from tickets.views import list_tickets

TOKEN = "s3cret-token-0123456789"


def call(wsgi, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """One request through the WSGI app: (status code, headers dict, body text)."""
    path, _, query = path.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "wsgi.input": io.BytesIO(),
               "HTTP_HOST": "127.0.0.1:8025"}
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    seen: dict[str, object] = {}

    def start_response(status: str, header_list: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = int(status.split()[0]), dict(header_list)

    body = b"".join(wsgi(environ, start_response)).decode()
    return seen["status"], seen["headers"], body


@pytest.fixture
def seeded(make_app, tmp_path, db_url):  # type: ignore[no-untyped-def]
    app, keys = build_seeded_app(make_app, tmp_path, db_url)
    return app, keys, DashboardApp(app)


def test_overview_shows_phase_outlook_and_tickets_breached_first(seeded):
    app, keys, wsgi = seeded
    status, headers, body = call(wsgi, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Week 2 of hypercare: stabilisation" in body and "day 9" in body
    assert 'id="outlook" class="no-go"' in body  # open P1/P2 block the exit
    assert '<meta http-equiv="refresh" content="60">' in body
    # Open tickets only, breached first, then about to breach, then the rest.
    order = [body.index(f">{keys[k]}<") for k in ("breached", "at_risk", "Feature request: colour for VIP accounts")]
    assert order == sorted(order)
    listed = body.split('id="attention"')[1].split('id="phase-outlook"')[0]
    assert f">{keys['CRM is down for everyone']}<" not in listed  # resolved: not listed
    # Charts start at go-live (day 9: ten days), burn-down and SLA trend as inline SVG.
    assert '<svg id="trend-chart"' in body and body.count('class="bar opened"') == 10
    assert body.count('class="burn backlog"') == 10 and body.count('class="sla-day"') == 10
    # The top answers "how is the go-live going": verdict with reason, open P1/P2, SLA with n, backlog.
    top = body.split('id="attention"')[0]
    assert 'id="verdict" class="verdict off_track"' in top and "past the response time" in top
    assert "first-response SLA, last 7 days:" in top and " of " in top.split('id="tile-sla"')[1][:400]
    assert 'id="tile-backlog"' in top
    assert "Average <strong>3.5</strong> / 5 from 2 ratings" in body
    assert "Ada" in body and "1 h 0 min" not in body.split("Workload")[1][:50]


def test_everything_users_wrote_is_escaped(seeded):
    app, keys, wsgi = seeded
    _, _, body = call(wsgi, "/")
    assert "<script>" not in body and "&lt;script&gt;document.title=" in body
    assert "&lt;b&gt;two hours&lt;/b&gt; &amp; nobody called back" in body  # a low-score feedback comment
    _, headers, page = call(wsgi, f"/tickets/{keys[XSS_SUBJECT]}")
    assert "<script>" not in page and "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "script-src" not in headers["Content-Security-Policy"] and "default-src 'none'" in headers[
        "Content-Security-Policy"]  # and nothing could run anyway


def test_ticket_page_has_thread_reasons_timeline_and_events(seeded):
    app, keys, wsgi = seeded
    key = keys["CRM is down for everyone"]
    status, _, body = call(wsgi, f"/tickets/{key}")
    assert status == 200
    assert "Nobody can log in since 8:00" in body  # the thread
    assert "SSO certificate had expired" in body  # the team's answer and the resolution
    assert 'id="classification"' in body and "<td>" in body.split('id="classification"')[1]
    timeline = body.split('id="timeline"')[1].split("</section>")[0]
    assert "opened" in timeline and "first response due (1 hour)" in timeline and "resolved" in timeline
    events = body.split('id="events"')[1]
    assert "created" in events and "resolved" in events and "feedback" in events
    assert "5/5: Fast and clear, thank you!" in body
    assert call(wsgi, "/tickets/HC-999")[0] == 404
    assert call(wsgi, "/nowhere")[0] == 404


def test_api_tickets_has_the_cli_json_shape(seeded):
    app, keys, wsgi = seeded
    status, headers, body = call(wsgi, "/api/tickets")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    with app.store.read() as s:
        assert json.loads(body) == json.loads(json.dumps(list_tickets(s)))
    import argparse

    from tickets.cli import cmd_tickets

    app.out = io.StringIO()
    cmd_tickets(app, argparse.Namespace(status=None, severity=None, json=True))
    assert json.loads(app.out.getvalue()) == json.loads(body)  # same as `hypercare tickets --json`
    opened = json.loads(call(wsgi, "/api/tickets?status=open")[2])
    assert {t["key"] for t in opened} == {keys[k] for k in ("breached", "at_risk", XSS_SUBJECT,
                                                            "Feature request: colour for VIP accounts",
                                                            "Typo in the quote PDF footer")}
    assert all(t["severity"] == "P1" for t in json.loads(call(wsgi, "/api/tickets?severity=p1")[2]))
    assert call(wsgi, "/api/tickets?status=bogus")[0] == 400
    detail = json.loads(call(wsgi, f"/api/tickets/{keys['breached']}")[2])
    assert detail["key"] == keys["breached"] and detail["messages"] and detail["events"]


def test_api_summary(seeded):
    app, keys, wsgi = seeded
    summary = json.loads(call(wsgi, "/api/summary")[2])
    assert summary["phase"]["key"] == "stabilisation" and summary["phase"]["day"] == 9
    assert summary["outlook"]["decision"] == "no-go"
    assert [t["key"] for t in summary["attention"]][:2] == [keys["breached"], keys["at_risk"]]
    assert summary["attention"][0]["sla_state"] == "breached"
    assert summary["open"]["total"] == 5 and summary["open"]["by_severity"]["P1"] == 1
    p1 = next(row for row in summary["sla"] if row["severity"] == "P1")
    assert (p1["met"], p1["breached"], p1["target"]) == (2, 1, "1 hour")  # the open overdue P1 counts as late
    assert sum(d["opened"] for d in summary["trend"]) == 10 and summary["trend"][-1]["date"] == "2026-12-02"
    assert summary["feedback"]["count"] == 2 and summary["feedback"]["average"] == 3.5
    assert summary["feedback"]["low"][0]["rating"] == 2
    assert summary["outbox"]["dead"] == 1
    assert summary["generated_at"].startswith("2026-12-02T14:00")


def _table_counts(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with app.store.read() as s:
        return {t.name: s.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def test_nothing_changes_state_and_only_get_head_are_allowed(seeded):
    app, keys, wsgi = seeded
    before = _table_counts(app)
    paths = ["/", f"/tickets/{keys['breached']}", "/api/summary", "/api/tickets", f"/api/tickets/{keys['breached']}",
             "/healthz"]
    for path in paths:
        expected = 503 if path == "/healthz" else 200  # the seeded desk has a dead outbox item
        assert call(wsgi, path)[0] == expected
        status, _, body = call(wsgi, path, "HEAD")
        assert status == expected and body == ""
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            status, headers, _ = call(wsgi, path, method)
            assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert _table_counts(app) == before


def test_token_required_when_configured(seeded):
    app, keys, _ = seeded
    wsgi = DashboardApp(app, TOKEN)
    assert call(wsgi, "/")[0] == 401 and call(wsgi, "/api/tickets")[0] == 401
    assert call(wsgi, "/", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert call(wsgi, "/?token=wrong")[0] == 401
    assert call(wsgi, "/api/summary", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    status, headers, _ = call(wsgi, f"/?token={TOKEN}")
    assert status == 200 and headers["Set-Cookie"].startswith(f"{COOKIE}={TOKEN}; HttpOnly; SameSite=Strict")
    assert call(wsgi, f"/tickets/{keys['breached']}", headers={"Cookie": f"{COOKIE}={TOKEN}"})[0] == 200
    status, _, body = call(wsgi, "/healthz")  # monitors need no token; it reveals only the reason
    assert status == 503 and json.loads(body)["checks"]["outbox"] == "1 dead item(s)"  # the seeded dead mail


def test_token_rules_at_start(monkeypatch):
    loopback = DashboardSettings(host="127.0.0.1")
    assert dashboard_token(loopback, {}) is None
    exposed = DashboardSettings(host="0.0.0.0")
    with pytest.raises(DashboardError, match=r"\[dashboard\] host 0.0.0.0 .* set token_env"):
        dashboard_token(exposed, {})
    with_env = DashboardSettings(host="0.0.0.0", token_env="HC_DASH_TOKEN")
    with pytest.raises(DashboardError, match="HC_DASH_TOKEN is empty or unset"):
        dashboard_token(with_env, {})
    with pytest.raises(DashboardError, match="shorter than 16"):
        dashboard_token(with_env, {"HC_DASH_TOKEN": "short"})
    assert dashboard_token(with_env, {"HC_DASH_TOKEN": TOKEN}) == TOKEN
    assert dashboard_token(DashboardSettings(host="::1", token_env="X"), {}) is None


def test_healthz_database_and_mailbox(make_app, tmp_path, clock):
    app = make_app()
    assert json.loads(call(DashboardApp(app), "/healthz")[2])["status"] == "ok"

    imap = ImapSettings(host="imap.example.com", username="support")
    app = make_app(config=dataclasses.replace(app.config, imap=imap))
    status, _, body = call(DashboardApp(app), "/healthz")
    assert status == 503 and "not polled yet" in json.loads(body)["reason"]
    box = mailbox_key(imap)  # the state row of the configured mailbox (others are history)
    with app.store.session() as s:
        s.add(ImapState(mailbox=box, last_uid=7, last_success_at=clock.now(), waiting=3))
    assert call(DashboardApp(app), "/healthz")[0] == 200
    clock.advance(minutes=5)
    with app.store.session() as s:
        state = s.get(ImapState, box)
        state.last_error, state.last_error_at = "AUTHENTICATIONFAILED Invalid credentials", clock.now()
    status, _, body = call(DashboardApp(app), "/healthz")
    assert status == 503 and f"mailbox {box}: last poll failed: AUTHENTICATIONFAILED" in json.loads(body)["reason"]
    with app.store.session() as s:
        s.get(ImapState, box).last_success_at = clock.now() + timedelta(seconds=1)
    clock.advance(hours=2)  # recovered, but then silent for two hours
    status, _, body = call(DashboardApp(app), "/healthz")
    assert status == 503 and "no successful poll for 119 min" in body

    dead = make_app(db="postgresql+psycopg://nobody@127.0.0.1:1/none")
    status, _, body = call(DashboardApp(dead), "/healthz")
    assert status == 503 and json.loads(body)["checks"]["database"].startswith("unreachable")


def test_served_by_waitress_over_http(make_app, tmp_path, clock):
    app, keys = build_seeded_app(make_app, tmp_path)
    app.environ = {"HC_DASH_TOKEN": TOKEN}
    server = DashboardServer(app, DashboardSettings(port=0, token_env="HC_DASH_TOKEN")).start()
    try:
        request = urllib.request.Request(server.url + "api/tickets", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200 and len(json.load(response)) == 10
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(server.url, timeout=5)
        assert denied.value.code == 401
        post = urllib.request.Request(server.url + "api/tickets", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(post, timeout=5)
        assert refused.value.code == 405
        # The port is taken now: a second server says so in one line.
        busy = DashboardServer(app, DashboardSettings(port=server.port, token_env="HC_DASH_TOKEN"))
        with pytest.raises(DashboardError, match=f"127.0.0.1:{server.port}: cannot listen"):
            busy.start()
    finally:
        server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0  # stopped: nobody listens


def test_cli_writes_the_static_page(make_app, tmp_path, clock):
    app, keys = build_seeded_app(make_app, tmp_path)
    import service

    out = tmp_path / "share" / "dashboard.html"
    parser = service.build_parser()
    args = parser.parse_args(["dashboard", "--out", str(out)])
    assert args.handler(app, args) == 0
    page = out.read_text()
    assert "5 open tickets, outlook no-go" in app.out.getvalue()
    assert keys["breached"] in page and "&lt;script&gt;" in page and "<script>" not in page
    assert 'http-equiv="refresh"' not in page and 'href="tickets/' not in page  # static: no refresh, no links
    args = parser.parse_args(["dashboard", "--json"])
    app.out = io.StringIO()
    assert args.handler(app, args) == 0 and json.loads(app.out.getvalue())["open"]["total"] == 5


def test_cli_unwritable_out_is_one_line(tmp_path, monkeypatch, capsys):
    import service

    (tmp_path / "file").write_text("x")
    monkeypatch.chdir(tmp_path)
    code = service.main(["--now", NOW.isoformat(), "dashboard", "--out", str(tmp_path / "file" / "page.html")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("hypercare: --out ")


def test_search_and_filters_on_the_api_and_the_page(seeded):
    app, keys, wsgi = seeded
    found = json.loads(call(wsgi, "/api/tickets?q=vip%20ACCOUNTS")[2])
    assert [t["key"] for t in found] == [keys["Feature request: colour for VIP accounts"]]
    p4 = json.loads(call(wsgi, "/api/tickets?status=open&severity=P4&role=business_analyst")[2])
    assert all(t["severity"] == "P4" and t["status"] in ("new", "acknowledged", "in_progress",
                                                         "waiting_on_customer") for t in p4)
    by_key = json.loads(call(wsgi, f"/api/tickets?q={keys['breached'].lower()}")[2])
    assert keys["breached"] in [t["key"] for t in by_key]
    status, _, body = call(wsgi, "/?q=vip&status=open")
    found_table = body.split('id="found"')[1].split("</table>")[0]
    assert status == 200 and found_table.count('<a href="tickets/') == 1
    assert 'value="vip"' in body and '<option value="open" selected>' in body


@pytest.mark.parametrize("query", [
    "q=%00%00", "q=%ff%fe%fd", "q=a%0d%0aSet-Cookie:%20x=1", "q=%25%25%25", "q=_", "q=" + "x" * 3000,
    "q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", "q=' OR 1=1 --", "q=\\", "q=!%25!_",
    "status=", "severity=", "role=", "q=login&q=other", "q=%e2%80%ae",
])
def test_search_parameters_hostile_values_are_text(seeded, query):
    app, keys, wsgi = seeded
    for path in ("/api/tickets", "/"):
        status, headers, body = call(wsgi, f"{path}?{query}")
        assert status == 200, (path, query, body[:200])
        assert "<script>alert(1)</script>" not in body
    if query.startswith("q=%25") or query.startswith("q=_") or query.startswith("q=!"):
        assert json.loads(call(wsgi, f"/api/tickets?{query}")[2]) == []  # a wildcard is matched as a character


@pytest.mark.parametrize(("query", "needle"), [
    ("status=bogus", "status 'bogus': use one of"),
    ("status=op%00en", "status 'op en'"),
    ("severity=P9", "severity 'P9'"),
    ("severity=P1%0d%0aX-Injected:%201", "severity 'P1  X-INJECTED: 1'"),
    ("role=ceo", "role 'ceo': use one of"),
    ("role=" + "r" * 100_000, "query too large"),
    ("&".join(f"q{i}=x" for i in range(1000)), "query too large"),
    ("q=" + "a" * 10_000, "query too large"),
])
def test_search_parameters_refused_with_one_line(seeded, query, needle):
    app, keys, wsgi = seeded
    for path in ("/api/tickets", "/"):
        status, headers, body = call(wsgi, f"{path}?{query}")
        assert status == 400 and needle in body and body.count("\n") == 1, (path, body[:300])
        assert "X-Injected" not in headers


def test_week_1_shows_standing_not_an_exit_verdict(make_app, tmp_path, clock):
    from test_dashboard_seed import seeded_config

    app = make_app(seeded_config(tmp_path))
    clock.set(datetime.fromisoformat("2026-11-23T08:00:00+00:00"))  # go-live morning, nothing yet
    status, _, body = call(DashboardApp(app), "/")
    assert status == 200 and 'id="standing" class="on_track">On track<' in body
    assert "NO-GO" not in body and 'id="outlook"' not in body
    assert "The exit verdict starts in week 2; the exit report goes out Fri 18 Dec" in body
    assert body.count('class="bar opened"') == 1  # the chart starts at go-live, not 13 empty days before
