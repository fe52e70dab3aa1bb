"""Digest content: figures aggregated in SQL, the text and HTML parts, the CLI, template overrides."""

from __future__ import annotations

import random
import re
import stat
from datetime import UTC, date, datetime, time, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from digestkit import add_rating, add_reopen, add_ticket
from mailkit import parse
from sqlalchemy import select
from test_cli import hypercare, out

from config import Config, DatabaseSettings, HypercareSettings, NotifierSettings, StakeholderSettings
from notifier.digest_cli import periodic_job
from notifier.digests import for_app
from notifier.digests import queries as q
from notifier.digests.criteria import CRITERIA, ExitFacts, ExitSettings, UnknownCriterion, evaluate
from notifier.render import TemplateProblem
from tickets.models import OutboxItem

BERLIN = ZoneInfo("Europe/Berlin")
GO_LIVE = date(2026, 11, 23)


def _local(days: int, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(GO_LIVE + timedelta(days=days), time(hour, minute), tzinfo=BERLIN).astimezone(UTC)


def _config(tmp_path, db_url: str, **extra) -> Config:  # type: ignore[no-untyped-def]
    return Config(base_dir=tmp_path, database=DatabaseSettings(url=db_url),
                  hypercare=HypercareSettings(go_live=GO_LIVE, timezone="Europe/Berlin"),
                  stakeholders=StakeholderSettings(daily=("cio@example.com",), weekly=("sponsor@example.com",)),
                  **extra)


def _seed(app) -> None:  # type: ignore[no-untyped-def]
    with app.store.session() as s:
        add_ticket(s, 1, _local(0, 9), severity="P1", status="new", subject="CRM down for everyone",
                   response_due=_local(0, 10), rules=("outage", "login"))
        t2 = add_ticket(s, 2, _local(0, 9, 30), severity="P2", status="resolved", resolved_at=_local(0, 15),
                        subject="Invoice run stopped",
                        first_response_at=_local(0, 10), response_met=True, rules=("outage",), role="business_analyst")
        t3 = add_ticket(s, 3, _local(0, 10), severity="P3", status="in_progress", first_response_at=_local(1, 12),
                        subject="Login fails for the sales team",
                        response_met=False, rules=("login",), reopened=1)
        add_ticket(s, 4, _local(0, 11), severity="P4", status="acknowledged", response_due=_local(14, 9),
                   role="technical_consultant", subject="Re: invoice layout wish")
        add_ticket(s, 5, _local(0, 22, 30), severity="P3", status="resolved", resolved_at=_local(1, 7),
                   subject="AW: login urgent",
                   first_response_at=_local(0, 23), response_met=True)
        add_reopen(s, t3, _local(1, 6))
        add_rating(s, t2, 4, _local(0, 16))
        add_rating(s, t3, 1, _local(1, 13), comment="Nobody <b>called</b> back")


def test_daily_status_figures(make_app, tmp_path, clock, db_url):
    app = make_app(_config(tmp_path, db_url))
    _seed(app)
    now = _local(1, 8)
    builder = for_app(app)
    with app.store.read() as s:
        ctx = builder.context(s, "status_daily", now, since=_local(0, 0))
    assert (ctx["new"].total, ctx["resolved"].total, ctx["open"].total) == (5, 2, 3)
    assert ctx["new"].by_severity == {"P1": 1, "P2": 1, "P3": 2, "P4": 1}
    assert ctx["open"].by_role == {"crm_admin": 2, "technical_consultant": 1}
    [p1] = ctx["blocking"]
    assert (p1.key, p1.age, p1.sla, p1.overdue) == ("HC-1", "23h 00m", "response overdue by 22h 00m", True)
    sla = {line.severity: (line.met, line.breached, line.overdue) for line in ctx["sla"]}
    assert sla == {"P1": (0, 0, 1), "P2": (1, 0, 0), "P3": (1, 0, 0), "P4": (0, 0, 0)}  # HC-3 answered after now
    assert [t.key for t in ctx["oldest"]] == ["HC-1", "HC-3", "HC-4"]
    assert [(b.label, b.opened, b.resolved) for b in ctx["trend"][-2:]] == [("Mon 23 Nov", 5, 1), ("Tue 24 Nov", 0, 1)]
    rendered = builder.render("status_daily", now, since=_local(0, 0))
    assert rendered.subject == "[Hypercare] Status Tue 24 Nov: at risk, 5 new, 2 resolved, 3 open, 1 open P1/P2"
    # The verdict first, with its reason; week 1 is never "off track" (the P1 is overdue: at risk, and why).
    assert rendered.text.splitlines()[0] == (
        "AT RISK: 1 open P1/P2 past the response time; first-response SLA 67% (2 of 3), n too small (< 20); "
        "1 new P1 in the last 5 days")
    assert "Week 1 of hypercare: intensive" in rendered.text and "acknowledged within its SLA" in rendered.text
    assert "HC-1  P1  age 23h 00m  CRM admin  response overdue by 22h 00m" in rendered.text


def test_weekly_summary_figures(make_app, tmp_path, clock, db_url):
    app = make_app(_config(tmp_path, db_url))
    _seed(app)
    builder = for_app(app)
    now = _local(7, 8)
    with app.store.read() as s:
        ctx = builder.context(s, "weekly_summary", now)
    assert (ctx["opened_total"], ctx["resolved_total"]) == (5, 2)
    assert ctx["topics"] == [("invoice", 2), ("login", 2)]  # words of the subjects, never rule ids
    assert ctx["reopened_total"] == 1 and ctx["reopened"] == [("HC-3", "Login fails for the sales team", 1)]
    assert (ctx["rated"], ctx["rating"]) == (2, "2.5")
    assert [(low["key"], low["rating"], low["comment"]) for low in ctx["low_ratings"]] == [
        ("HC-3", 1, "Nobody <b>called</b> back")]
    assert ctx["responses"] == 3 and ctx["response_p90"] == "1d 2h"  # HC-3 answered after 26 h
    sla = {line.severity: (line.met, line.breached, line.overdue, line.on_target) for line in ctx["sla"]}
    assert sla["P1"] == (0, 0, 1, False) and sla["P2"] == (1, 0, 0, True) and sla["P3"] == (1, 1, 0, False)
    assert not ctx["verdict"].go
    # One SLA figure: the tile, the per-severity table and the criterion are the same week and the same count.
    assert (ctx["sla_figure"].met, ctx["sla_figure"].measured) == (2, 4)
    assert sum(line.met for line in ctx["sla"]) == 2
    assert sum(line.met + line.breached + line.overdue for line in ctx["sla"]) == 4
    rendered = builder.render("weekly_summary", now)
    text = rendered.text
    assert rendered.subject.startswith("[Hypercare] Weekly summary, Week 1 (23 Nov - 29 Nov): at risk,")  # week 1
    assert "Weekly summary, Week 1 of hypercare (intensive)" in text and "Week 2" not in text
    assert "First-response SLA this week (goal 90%): 50% (2 of 4), n too small (< 20)" in text
    assert "[NOT JUDGED] first-response SLA compliance >= 90%" in text and ": 50% (2 of 4), n too small" in text
    assert "[FAIL] no open P1/P2 tickets: 1 open" in text
    for rule in ("outage", "fallback-severity", "topic-admin", "after-hours"):
        assert f"  {rule}\n" not in text
    assert "HC-3 rated 1/5: Nobody <b>called</b> back" in text
    assert "Nobody &lt;b&gt;called&lt;/b&gt; back" in (rendered.html or "")


def test_first_response_mean_and_p90_nearest_rank(make_app, tmp_path, clock, db_url):
    app = make_app(_config(tmp_path, db_url))
    with app.store.session() as s:
        for n in range(1, 11):
            add_ticket(s, n, _local(0, 9), first_response_at=_local(0, 9, n), response_met=True)
    with app.store.read() as s:
        count, mean, p90 = q.first_response_stats(s, _local(0, 0), _local(1, 0))
    assert (count, mean, p90) == (10, 330.0, 540.0)


def test_trend_buckets_are_local_days(make_app, tmp_path, clock, db_url):
    app = make_app(_config(tmp_path, db_url))
    with app.store.session() as s:
        add_ticket(s, 1, datetime(2026, 11, 23, 23, 30, tzinfo=UTC))  # 00:30 on the 24th in Berlin
        add_ticket(s, 2, datetime(2026, 11, 23, 22, 59, tzinfo=UTC))  # 23:59 on the 23rd
    with app.store.read() as s:
        bounds = [datetime.combine(GO_LIVE + timedelta(days=i), time(0), tzinfo=BERLIN) for i in range(3)]
        assert q.daily_trend(s, bounds) == [(1, 0), (1, 0)]


def test_exit_report_go_and_no_go(make_app, tmp_path, clock, db_url):
    app = make_app(_config(tmp_path, db_url))
    builder = for_app(app)
    with app.store.session() as s:
        # Backlog 3 a week ago, 1 now (a P3); all responses in time; last P1 ten days ago.
        add_ticket(s, 1, _local(10, 9), severity="P1", status="resolved", resolved_at=_local(10, 12),
                   first_response_at=_local(10, 9, 30), response_met=True)
        for n in (2, 3):
            add_ticket(s, n, _local(18, 9), status="resolved", resolved_at=_local(22, 9),
                       first_response_at=_local(21, 9), response_met=True)
        add_ticket(s, 4, _local(18, 9), status="in_progress", subject="Report filter",
                   first_response_at=_local(21, 10), response_met=True)
    now = _local(27, 8)
    rendered = builder.render("exit_report", now)
    assert rendered.subject.endswith(": GO"), rendered.text
    assert "[OK] open P1/P2/P3 backlog lower than 7 days ago (or empty): 3 -> 1 open" in rendered.text
    assert "HC-4  P3" in rendered.text and "Report filter" in rendered.text
    with app.store.session() as s:
        add_ticket(s, 5, _local(26, 9), severity="P1", status="new", response_due=_local(26, 10))
    rendered = builder.render("exit_report", now)
    assert rendered.subject.endswith(": NO-GO")
    assert "[FAIL] no open P1/P2 tickets: 1 open" in rendered.text
    assert "[FAIL] no new P1 in the last 5 days: 1 new P1" in rendered.text
    assert ("[NOT JUDGED] first-response SLA compliance >= 90% over the last 7 days (judged from 20 responses): "
            "75% (3 of 4), n too small (< 20)") in rendered.text
    assert "background:#b91c1c" in rendered.html  # the red banner


def test_exit_criteria_table_and_settings():
    facts = ExitFacts(open_blocking=0, sla_met=17, sla_measured=20, backlog_now=4, backlog_before=4, recent_p1=0)
    results = {r.name: r.passed for r in evaluate(facts, ExitSettings(sla_target=0.85))}
    assert results == {"no_open_blocking": True, "sla_compliance": True, "backlog_falling": False,
                       "no_recent_p1": True}
    only = evaluate(facts, ExitSettings(criteria=("sla_compliance",), sla_target=0.9))
    assert [(r.name, r.passed, r.figure) for r in only] == [("sla_compliance", False, "85% (17 of 20)")]
    with pytest.raises(UnknownCriterion, match="unknown criterion 'typo'"):
        evaluate(facts, ExitSettings(criteria=("typo",)))
    assert CRITERIA.names() == ("no_open_blocking", "sla_compliance", "backlog_falling", "no_recent_p1")


class _Balance(HTMLParser):
    VOID = {"br", "meta", "img", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        assert tag not in ("style", "script", "link"), f"<{tag}> does not survive Gmail/Outlook"
        assert not any(name == "class" for name, _ in attrs), "classes need a stylesheet: inline instead"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):  # type: ignore[no-untyped-def]
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


@pytest.mark.parametrize("key", ["status_daily", "weekly_summary", "exit_report"])
def test_html_is_inlined_balanced_and_escaped(make_app, tmp_path, clock, key):
    app = make_app(_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"))
    with app.store.session() as s:
        add_ticket(s, 1, _local(0, 9), severity="P1", subject="<script>alert(1)</script> & broken",
                   rules=("outage",))
        add_ticket(s, 2, _local(0, 9), severity="P2", status="resolved", resolved_at=_local(1, 9))
    html = for_app(app).render(key, _local(1, 8)).html
    assert html is not None
    checker = _Balance()
    checker.feed(html)
    checker.close()
    assert checker.stack == []
    assert "<script>" not in html
    assert 'width="640"' in html and "font-family:Arial" in html
    # The chart: table bars with pixel widths and bgcolor for Outlook, background for Gmail.
    if key == "exit_report":  # the burn-down: columns of pixel height, no image, no script
        assert re.search(r'<div title="\d+ backlog" style="height:\d+px;background:#374151', html)
    else:
        assert re.search(r'<td width="\d+" height="10" bgcolor="#374151" style="width:\d+px', html)
    if key == "status_daily":
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; broken" in html


def test_digest_mail_headers(make_app, tmp_path, clock):
    app = make_app(_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}"))
    clock.set(_local(0, 8))
    [(_, job)] = periodic_job(app)
    job()
    with app.store.read() as s:
        mime = s.scalar(select(OutboxItem.mime).where(OutboxItem.kind == "status_daily"))
    msg = parse(mime)
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Precedence"] == "bulk"
    assert msg["X-Hypercare-Loop"] == "support@localhost" and msg["Message-ID"].startswith("<hc.status_daily.")
    assert msg["To"] == "cio@example.com"
    assert msg.get_body(("html",)) is not None and msg.get_body(("plain",)) is not None


def test_template_override_is_used_and_a_typo_fails_at_start(make_app, tmp_path, clock):
    overrides = tmp_path / "mytemplates"
    overrides.mkdir()
    (overrides / "status_daily.txt.j2").write_text("Subject: Custom {{ today }}\nOpen: {{ open.total }}\n")
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", notifier=NotifierSettings(templates_dir="mytemplates"))
    app = make_app(cfg)
    rendered = for_app(app).render("status_daily", _local(0, 8))
    assert rendered.subject == f"Custom {_local(0, 8).astimezone(BERLIN).date()}" and rendered.text == "Open: 0\n"
    assert "<table" in (rendered.html or "")  # the HTML part not overridden: the built-in one
    (overrides / "weekly_summary.txt.j2").write_text("Subject: x\n{% for t in topics %}{{ t.nmae }}{% endfor %}\n")
    with pytest.raises(TemplateProblem, match="weekly_summary"):
        periodic_job(make_app(cfg))  # built when the daemon starts: before the first Monday


def test_compiled_templates_are_cached_privately_and_an_edited_or_broken_entry_recompiles(make_app, tmp_path):
    """A one-shot command (``ingest -`` per piped mail) reads compiled templates from var/cache/templates;
    jinja keys each entry by the source's checksum, so an edit is never served stale, and a damaged
    entry is compiled afresh instead of failing the start."""
    overrides = tmp_path / "mytemplates"
    overrides.mkdir()
    template = overrides / "status_daily.txt.j2"
    template.write_text("Subject: First\nOpen: {{ open.total }}\n")
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}", notifier=NotifierSettings(templates_dir="mytemplates"))
    assert for_app(make_app(cfg)).render("status_daily", _local(0, 8)).subject == "First"
    cache = tmp_path / "var" / "cache" / "templates"
    entries = sorted(cache.iterdir())
    assert len(entries) >= 20 and stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert {stat.S_IMODE(e.stat().st_mode) for e in entries} == {0o600}
    template.write_text("Subject: Second\nOpen: {{ open.total }}\n")
    assert for_app(make_app(cfg)).render("status_daily", _local(0, 8)).subject == "Second"
    for entry in cache.iterdir():  # garbage, a NUL-filled and a truncated entry
        entry.write_bytes(random.Random(entry.name).choice([b"\xff\xfe garbage", b"\0" * 4096,
                                                              entry.read_bytes()[:40]]))
    assert for_app(make_app(cfg)).render("status_daily", _local(0, 8)).subject == "Second"


def test_a_second_desk_in_one_process_compiles_no_template_again(make_app, tmp_path, monkeypatch):
    """Each App checks every template at its start; a process building several (the tests, a desk per
    folder) compiles each source once: the code is kept in memory by the source's checksum, still
    written to each desk's cache folder, and an edited template compiles afresh."""
    from jinja2 import Environment

    compiled: list[str | None] = []
    real_compile = Environment.compile

    def counting(self, source, name=None, filename=None, raw=False, defer_init=False):  # type: ignore[no-untyped-def]
        compiled.append(name)
        return real_compile(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(Environment, "compile", counting)
    desks = [tmp_path / "one", tmp_path / "two"]
    for desk in desks:
        cfg = _config(desk, f"sqlite:///{desk / 'x.db'}", notifier=NotifierSettings(templates_dir="mytemplates"))
        (desk / "mytemplates").mkdir(parents=True)
        (desk / "mytemplates" / "status_daily.txt.j2").write_text("Subject: First\nOpen: {{ open.total }}\n")
        compiled.clear()
        assert for_app(make_app(cfg)).render("status_daily", _local(0, 8)).subject == "First"
        assert len(list((desk / "var" / "cache" / "templates").iterdir())) >= 20
    # The second desk compiled only its own override (another file, so another key), no built-in one.
    assert compiled == ["status_daily.txt.j2"]
    (desks[1] / "mytemplates" / "status_daily.txt.j2").write_text("Subject: Edited\n")
    compiled.clear()
    assert for_app(make_app(cfg)).render("status_daily", _local(0, 8)).subject == "Edited"
    assert compiled == ["status_daily.txt.j2"]


def test_cli_digest_print_send_and_errors(tmp_path):
    (tmp_path / "hypercare.toml").write_text(
        '[hypercare]\ngo_live = "2026-11-23"\ntimezone = "Europe/Berlin"\n'
        '[stakeholders]\ndaily = ["cio@example.com"]\n')
    now = "2026-11-24T08:00:00+01:00"
    text = hypercare("digest", "daily", "--now", now, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert out(text).startswith("Subject: [Hypercare] Status Tue 24 Nov: on track, 0 new")
    html = hypercare("digest", "exit", "--format", "html", "--now", now, cwd=tmp_path)
    assert html.returncode == 0 and out(html).startswith("<!DOCTYPE html>") and "Exit report: GO" in out(html)
    sent = hypercare("digest", "daily", "--send", "--now", now, cwd=tmp_path)
    assert sent.returncode == 0 and "queued outbox item 1 for cio@example.com" in sent.stderr.decode()
    listing = hypercare("outbox", "list", cwd=tmp_path)
    assert "status_daily" in out(listing) and "pending" in out(listing)
    nobody = hypercare("digest", "weekly", "--send", "--now", now, cwd=tmp_path)
    assert nobody.returncode == 2 and nobody.stdout == b""
    assert nobody.stderr.decode().strip().splitlines()[-1] == (
        "hypercare: no recipients for weekly_summary: set [stakeholders] weekly in the config")
    broken = tmp_path / "t"
    broken.mkdir()
    (broken / "exit_report.txt.j2").write_text("Subject: {{ verdict.wrod }}\n")
    (tmp_path / "hypercare.toml").write_text(
        (tmp_path / "hypercare.toml").read_text() + '[notifier]\ntemplates_dir = "t"\n')
    bad = hypercare("tick", "--now", now, cwd=tmp_path)
    assert bad.returncode == 2
    [line] = [x for x in bad.stderr.decode().splitlines() if x.startswith("hypercare:")]
    assert "exit_report" in line and "wrod" in line and "Traceback" not in bad.stderr.decode()
