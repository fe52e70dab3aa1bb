"""Issue 16: the public status page ``/status`` (and ``dashboard --status-page --out``).

What is proven: current and recently resolved incidents are shown with a neutral title, since when,
the number of reports and the latest ``#update``; nothing private reaches the page (no reporter
names or addresses, even when the team pasted them into an update; no ticket bodies, no tokens);
hostile titles, updates and query parameters are text or a one-line 400; the page answers without
the dashboard token but keeps the Host check and the CSP.  Real ingest path, FrozenClock, SQLite and
PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import pytest
from desk_kit import P2_MAIL, PAM, TIM, desk_config, flush, report, team_reply, text_of
from sqlalchemy import select
from test_dashboard import call

import service
from bench.rehearsal import STORM
from config import DashboardSettings
from dashboard.public_status import public_status
from dashboard.web import DashboardApp
from tickets.models import Incident, IncidentUpdate, Message, OutboxItem, Ticket
from tickets.public_text import names_of, public_line, redact

TOKEN = "s3cret-token-0123456789"
HOSTILE_UPDATE = ("Proxy restarted for user3@customer.example (Maria Keller called us), ETA 10:30 "
                  "<script>alert(1)</script> support+HC-1.0123456789abcdef0123456789@example.com")


def storm(app, clock, tag: str = "s") -> list[str]:  # type: ignore[no-untyped-def]
    """The rehearsal's outage: eight people in eight minutes, three languages (one incident)."""
    keys = []
    for i, (_, subject, body) in enumerate(STORM):
        keys.append(report(app, (subject, body), sender=f"user{i}@customer.example", message_id=f"{tag}{i}@c.example"))
        clock.advance(minutes=1)
    return keys


def status_app(make_app, tmp_path, db_url, **dashboard):  # type: ignore[no-untyped-def]
    cfg = desk_config(tmp_path, db_url=db_url)
    cfg = dataclasses.replace(cfg, dashboard=DashboardSettings(**dashboard))
    return make_app(cfg)


def test_status_page_shows_incidents_and_nothing_private(make_app, clock, tmp_path, db_url):
    app = status_app(make_app, tmp_path, db_url, token_env="TOKEN")
    old = storm(app, clock)  # INC-1: resolved ten days before "now"
    team_reply(app, old[0], "#resolve The proxy was restarted.", sender=TIM.email)
    clock.advance(days=7)
    recent = [report(app, ("Sync to ERP failing", P2_MAIL[1]), sender=f"r{i}@partner.example") for i in range(2)]
    team_reply(app, recent[0], "#resolve The ERP connector was restarted.", sender=TIM.email)  # INC-2
    clock.advance(days=3)
    now_keys = storm(app, clock, "again")  # INC-3: current
    team_reply(app, now_keys[2], f"#update {HOSTILE_UPDATE}", sender=TIM.email)
    wsgi = DashboardApp(app, TOKEN)

    assert call(wsgi, "/")[0] == 401  # the dashboard needs the token ...
    status, headers, body = call(wsgi, "/status")  # ... the status page is for every user
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"] and "script-src" not in headers[
        "Content-Security-Policy"]
    current = body.split('id="current"')[1].split('id="resolved"')[0]
    assert "CRM down (Technical consultant" in current and "INC-3" in current and "8 reports" in current
    assert "Latest update" in current and "Proxy restarted for [email] ([name] called us), ETA 10:30" in current
    resolved = body.split('id="resolved"')[1]
    assert "INC-2" in resolved and "The ERP connector was restarted." in resolved and "INC-1" not in body
    # Nothing private: no address, no reporter name, no body text, no token, no ticket subject verbatim.
    for private in ("customer.example", "partner.example", "Maria", "Keller", "user3", "r0@", "Nobody can log in",
                    "Tim Tech", "0123456789abcdef", "support+", "HC-", "<script>alert(1)"):
        assert private not in body, private
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # the team's text is shown as text

    # The window: ?days=14 shows INC-1 again; the JSON form carries the same fields only.
    assert "INC-1" in call(wsgi, "/status?days=14")[2]
    with app.store.read() as session:
        data = public_status(session, app.config, clock.now(), 7)
    assert [i["key"] for i in data["current"]] == ["INC-3"] and [i["key"] for i in data["resolved"]] == ["INC-2"]
    assert set(data["current"][0]) == {"key", "title", "severity", "since", "reports", "update_text", "update_at",
                                       "resolved_at"}
    # Still the dashboard's Host check: a rebinding page cannot read it either.
    assert call(wsgi, "/status", headers={"Host": "evil.example"})[0] == 421


def test_status_page_static_file_and_json(make_app, clock, tmp_path, db_url):
    app = status_app(make_app, tmp_path, db_url)
    storm(app, clock)
    out = tmp_path / "public" / "status.html"
    app.out = io.StringIO()
    args = service.build_parser().parse_args(["dashboard", "--status-page", "--out", str(out)])
    assert args.handler(app, args) == 0
    assert "status page written to" in app.out.getvalue() and "1 current" in app.out.getvalue()
    page = out.read_text(encoding="utf-8")
    assert '<meta http-equiv="Content-Security-Policy" content="default-src' in page
    assert "CRM down" in page and "8 reports" in page and "refresh" not in page and "customer.example" not in page
    app.out = io.StringIO()
    args = service.build_parser().parse_args(["dashboard", "--status-page", "--json"])
    assert args.handler(app, args) == 0
    data = json.loads(app.out.getvalue())
    assert data["current"][0]["reports"] == 8 and "reporters" not in json.dumps(data)


def test_hostile_titles_and_updates_stay_text_and_bounded(make_app, clock, tmp_path, db_url):
    app = status_app(make_app, tmp_path, db_url)
    keys = storm(app, clock)
    megabyte = "x<b>y</b>\r\nSet-Cookie: a=1\u2028" * 70_000
    with app.store.session() as session:
        incident = session.scalar(select(Incident))
        incident.title = megabyte  # the stored title (a reporter's subject) is never shown anyway
        for n, ticket in enumerate(session.scalars(select(Ticket).where(Ticket.incident_id == incident.id))):
            ticket.subject = ("<script>alert(1)</script> Maria\r\nBcc: x@evil.example CRM down " if n % 2
                              else megabyte[:998])
        session.add(IncidentUpdate(incident=incident, at=clock.now(), kind="update", author="Tim Tech",
                                   text="Restart\r\n<img src=x onerror=alert(1)> done\t" + "ü" * 1_000_000))
    status, _, body = call(DashboardApp(app), "/status")
    assert status == 200 and len(body) < 40_000, len(body)
    assert "<script" not in body and "<img" not in body and "<b>" not in body and "Set-Cookie" not in body
    assert "Maria" not in body and "evil.example" not in body
    assert re.search(r"Restart &lt;img src=x onerror=alert\(1\)&gt; done ü+…", body)
    # An update that came in by mail with invalid UTF-8 and a NUL is shown as text, not a 500.
    raw = (b"From: Tim Tech <tim@example.com>\r\nTo: " + app.tokens.reply_address(keys[0], TIM.email,
           clock.now()).encode() + b"\r\nSubject: Re: [" + keys[0].encode() + b"]\r\nMessage-ID: <u8@x>\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\n#update Proxy \xff\xfe restarted \x00 now\r\n")
    assert app.pipeline.ingest(raw).action == "command"
    status, _, body = call(DashboardApp(app), "/status")
    assert status == 200 and "Proxy" in body and "restarted" in body and "\x00" not in body


@pytest.mark.parametrize(("query", "answer"), [
    ("days=%00", 400), ("days=-1", 400), ("days=0", 400), ("days=91", 400), ("days=1e3", 400), ("days=%ff%fe", 400),
    ("days=%3Cscript%3E", 400), ("days=99999999999999999999", 400), ("days=7%0d%0aX-Injected:%201", 400),
    ("days=%ef%bc%97", 400),  # a fullwidth digit seven is not a number of days
    ("days=" + "9" * 5000, 400), ("&".join(f"d{i}=1" for i in range(500)), 400),
    ("days=3&days=bogus", 200), ("q=%3Cscript%3E&token=x&incident=INC-1", 200), ("days=", 200), ("days=90", 200),
])
def test_status_query_parameters_with_hostile_values(make_app, clock, tmp_path, query, answer):
    app = status_app(make_app, tmp_path, None)
    storm(app, clock)
    status, headers, body = call(DashboardApp(app), f"/status?{query}")
    assert status == answer, (query, body[:200])
    assert "X-Injected" not in headers and "<script>" not in body
    if answer == 400:
        assert body.count("\n") == 1 and ("days" in body or "query too large" in body)


def test_public_text_rules():
    names = {"Maria", "Keller", "user3"}
    assert redact("mail maria@localhost or MARIA.keller@x.example, user3 knows", names) == \
        "mail [email] or [email], [name] knows"
    assert public_line("a\x00b\r\nc\u2028d\ud800e", limit=50) == "ab c d\ufffde"
    assert public_line("y" * 10_000, limit=20) == "y" * 19 + "…"
    assert public_line("Call +49 30 1234567 at 08:00 on 2026-11-23") == "Call [phone] at 08:00 on 2026-11-23"


def test_redacting_with_thousands_of_reporters_is_one_pass_over_the_text(monkeypatch):
    """An incident may have thousands of reporters; every later report's acknowledgement and every
    status page redacts their names. One regex per name made that seconds per mail (5,000 names:
    1.4 s per line, 3.6 s per title); now the text's words are looked up in a set: no per-name regex."""
    import tickets.public_text as public_text

    calls = {"sub": 0}
    real_sub = public_text.re.sub

    def counting_sub(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["sub"] += 1
        return real_sub(*args, **kwargs)

    monkeypatch.setattr(public_text.re, "sub", counting_sub)
    people = [(f"Person{i} Name{i}", f"p{i}.x@c.example") for i in range(5000)] + [("Maria Keller", "mk@c.example")]
    names = names_of(people)
    hostile = "Maria Keller\x00 and person42\r\nName42 and Jean-Pierre, " + "ok " * 300_000
    text = redact(hostile, names | {"Jean-Pierre"})
    assert calls["sub"] == 0
    assert text.startswith("[name]\x00 and [name]\r\n[name] and [name], ok ok")  # one name per person
    assert public_line("Proxy restarted for Maria Keller (ring person4999)", names) == \
        "Proxy restarted for [name] (ring [name])"


def test_an_incident_of_one_report_has_a_neutral_title(make_app, clock, tmp_path):
    app = status_app(make_app, tmp_path, None)
    key = report(app, ("Maria Keller: invoice export fails", "Since today the invoice export fails."),
                 sender="maria.keller@customer.example")
    team_reply(app, key, "#update We are looking at the invoice export.", sender=PAM.email)
    with app.store.read() as session:
        [item] = public_status(session, app.config, clock.now(), 7)["current"]
        assert session.scalar(select(Message.subject).where(Message.direction == "in").limit(1)).startswith("Maria")
    assert item["title"].startswith("Invoice export fails (") and "Maria" not in item["title"]
    assert item["reports"] == 1 and item["update_text"] == "We are looking at the invoice export."


def test_incident_filter_on_the_api_and_the_page(make_app, clock, tmp_path, db_url):
    app = status_app(make_app, tmp_path, db_url)
    keys = storm(app, clock)
    other = report(app, ("Typo on the account page", "There is a typo in the label."), sender="o@customer.example")
    wsgi = DashboardApp(app)
    found = json.loads(call(wsgi, "/api/tickets?incident=inc-1")[2])
    assert [t["key"] for t in found] == keys and {t["incident_key"] for t in found} == {"INC-1"}
    both = json.loads(call(wsgi, "/api/tickets?incident=INC-1&q=user3")[2])
    assert [t["key"] for t in both] == [keys[3]]
    assert json.loads(call(wsgi, "/api/tickets?incident=INC-99")[2]) == []  # well-formed, unknown: nothing
    assert other not in [t["key"] for t in json.loads(call(wsgi, "/api/tickets?incident=INC-1")[2])]
    status, _, body = call(wsgi, "/?incident=INC-1")
    table = body.split('id="found"')[1].split("</table>")[0]
    assert status == 200 and table.count('<a href="tickets/') == 8 and table.count("<td>INC-1</td>") == 8
    assert '<option value="INC-1" selected>INC-1</option>' in body
    assert '<a class="incident-reports" href="?incident=INC-1">INC-1</a>' in call(wsgi, "/")[2]


@pytest.mark.parametrize(("query", "needle"), [
    ("incident=INC-%001", "incident 'INC- 1': use an incident key like INC-3"),
    ("incident=INC-1%0d%0aX-Injected:%201", "incident 'INC-1  X-INJECTED: 1'"),
    ("incident=HC-1", "incident 'HC-1'"),
    ("incident=%ff%fe", "incident '"),
    ("incident=INC-%3Cscript%3E", "incident 'INC-<SCRIPT>'"),
    ("incident=INC-" + "1" * 13, "use an incident key like INC-3"),
    ("incident=INC-1%20OR%201=1", "incident 'INC-1 OR 1=1'"),
    ("incident=%ef%bc%a9NC-1", "use an incident key"),  # a fullwidth I
    ("incident=" + "I" * 5000, "query too large"),
])
def test_incident_filter_hostile_values_are_one_line_400(make_app, clock, tmp_path, query, needle):
    app = status_app(make_app, tmp_path, None)
    storm(app, clock)
    for path in ("/api/tickets", "/"):
        status, headers, body = call(DashboardApp(app), f"{path}?{query}")
        assert status == 400 and needle in body and body.count("\n") == 1, (path, body[:300])
        assert "X-Injected" not in headers


def test_known_issue_acknowledgement_links_the_status_page_in_three_languages(make_app, clock, tmp_path, relay):
    from email import message_from_bytes, policy

    url = "https://status.example.com/crm?from=ack"
    cfg = desk_config(tmp_path, relay=relay)
    app = make_app(dataclasses.replace(cfg, dashboard=DashboardSettings(public_status_url=url)))
    storm(app, clock)
    flush(app)
    acks = {d.recipients[0]: d for d in relay.deliveries if d.recipients[0].startswith("user")}
    lines = {"en": "Current status of all known issues: ", "de": "Aktueller Stand aller bekannten Probleme: ",
             "fr": "État actuel de tous les problèmes connus : "}
    for i, (lang, _, _) in enumerate(STORM):
        text = text_of(acks[f"user{i}@customer.example"])
        if i == 0:
            assert url not in text  # the first report is no "known issue"
        else:
            assert f"{lines[lang]}{url}\r\n" in text, (lang, text)
    # Without a configured URL the known-issue acknowledgement has no status line at all.
    plain = make_app(desk_config(tmp_path / "plain"))
    storm(plain, clock, "plain")
    with plain.store.read() as session:
        texts = [message_from_bytes(bytes(item.mime), policy=policy.default).get_body(("plain",)).get_content()
                 for item in session.scalars(select(OutboxItem).where(OutboxItem.kind == "ack_known"))]
    assert len(texts) == 7 and not any("status" in t.lower() for t in texts)


def test_known_issue_acknowledgement_shows_the_neutral_title_and_a_redacted_update(make_app, clock, tmp_path):
    """Every later reporter reads the known-issue acknowledgement: it must not carry the first reporter's
    subject (their name in it) nor a name or address the team pasted into ``#update``."""
    from email import message_from_bytes, policy

    app = make_app(desk_config(tmp_path))
    first = report(app, ("Maria Keller: CRM is down", STORM[0][2]), sender="maria.keller@customer.example",
                   message_id="first@c.example")
    team_reply(app, first, f"#update {HOSTILE_UPDATE}", sender=TIM.email)
    for i, (_, subject, body) in enumerate(STORM[1:4], start=1):
        clock.advance(minutes=1)
        report(app, (subject, body), sender=f"user{i}@customer.example", message_id=f"later{i}@c.example",
               name=f"Reporter Number{i}")
    with app.store.read() as session:
        items = session.scalars(select(OutboxItem).where(OutboxItem.kind == "ack_known")).all()
        texts = [message_from_bytes(bytes(item.mime), policy=policy.default).get_body(("plain",)).get_content()
                 for item in items]
    assert len(texts) == 3
    for text in texts:
        assert "INC-1: " in text or "INC-1 : " in text
        for private in ("Maria", "Keller", "maria.keller", "user3@customer.example", "0123456789abcdef"):
            assert private not in text, (private, text)
        assert "Proxy restarted for [email] ([name] called us), ETA 10:30" in text
