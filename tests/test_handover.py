"""Hand-over kit: KB drafts on a seeded history, and exports that round-trip (CSV and JSON)."""

from __future__ import annotations

import json

import pytest
from test_dashboard_seed import XSS_SUBJECT, build_seeded_app

import service
from handover.export import export_rows, read_export, to_csv_text, to_json_text
from handover.kb import redact, strip_quotes
from tickets.models import OPEN_STATUSES


def run(app, *argv: str) -> str:  # type: ignore[no-untyped-def]
    import io

    app.out = io.StringIO()
    args = service.build_parser().parse_args(list(argv))
    assert args.handler(app, args) == 0
    return app.out.getvalue()


def test_redact_and_strip_quotes():
    text = ("Call me on +49 30 1234567 or (030) 555-12345, mail maria.keller@customer.example.\n"
            "Since 2026-11-23 at 08:00, ticket HC-12, error 500.")
    clean = redact(text, ("Maria Keller", "Maria"))
    assert "1234567" not in clean and "555-12345" not in clean and "@" not in clean
    assert clean.count("[phone]") == 2 and "[email]" in clean
    assert "2026-11-23" in clean and "08:00" in clean and "HC-12" in clean and "500" in clean
    assert redact("Hi, Maria here", ("Maria",)) == "Hi, [name] here"
    mail = "It works now.\n\nOn Mon, 23 Nov 2026 Ada wrote:\n> old text\n> more"
    assert strip_quotes(mail) == "It works now."
    assert strip_quotes("New info\n> quoted\nmore\n--\nMaria\n+49 171 1234567") == "New info\nmore"


def test_kb_drafts_from_seeded_history(make_app, tmp_path, db_url):
    app, keys = build_seeded_app(make_app, tmp_path, db_url)
    out = tmp_path / "kb"
    assert "draft(s) written to" in run(app, "kb", "draft", "--out", str(out))
    files = {p.name: p.read_text() for p in out.glob("*.md")}
    # Grouped by a topic word the subjects share ("down"), never by rule ids; single tickets are no article.
    assert set(files) == {"index.md", "down.md"}, set(files)
    assert not any(name in everything_of(files) for name in ("fallback-severity", "topic-admin", "unclassified.md"))
    everything = "\n".join(files.values())
    # Personal data and quoted history are gone.
    assert "@customer.example" not in everything and "1234567" not in everything
    assert "jan@" not in everything and "Maria" not in everything
    # Only resolved tickets, each linked, with symptom and resolution.
    resolved = [keys[s] for s in ("CRM is down for everyone", "Cannot save opportunities", "CRM is down again",
                                  "Login fails after password reset", "Approvals stuck in pending")]
    for key in resolved:
        assert f"[{key}](http://127.0.0.1:8025/tickets/{key})" in everything
    assert keys[XSS_SUBJECT] not in everything and keys["breached"] not in everything
    # The two "CRM down" outages share a topic: counted together, newest fix first.
    down = next(text for text in files.values() if keys["CRM is down again"] in text and "## Symptom" in text)
    assert "**How often:** " in down and "Nobody can log in since 8:00" in down
    assert down.index("certificate chain was incomplete") < down.index("SSO certificate had expired")
    assert "[phone]" in down and "CRM is down for everyone" in down  # the product's name is not a person's
    index = files["index.md"]
    assert index.startswith("# Knowledge-base drafts") and "| Topic | Tickets | File |" in index
    assert "| Down: CRM is down for everyone | 2 | [down.md](down.md) |" in index
    single = index.split("## Single tickets (no shared topic, no article)")[1]
    for subject in ("Cannot save opportunities", "Login fails after password reset", "Approvals stuck in pending"):
        assert f"[{keys[subject]}](http://127.0.0.1:8025/tickets/{keys[subject]}) {subject}" in single
    printed = run(app, "kb", "draft")
    assert "1 topic(s) from 5 resolved ticket(s)" in printed


def everything_of(files: dict[str, str]) -> str:
    return "\n".join([*files, *files.values()])


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_round_trips(make_app, tmp_path, fmt):
    app, keys = build_seeded_app(make_app, tmp_path)
    with app.store.read() as s:
        expected = json.loads(json.dumps(export_rows(s)))
    text = run(app, "export", "tickets", "--format", fmt)
    assert read_export(text, fmt) == expected
    assert len(expected) == 10 and all(t["messages"] and t["events"] for t in expected)  # full history
    xss = next(t for t in expected if t["key"] == keys[XSS_SUBJECT])
    assert xss["subject"] == XSS_SUBJECT
    out = tmp_path / "export" / f"open.{fmt}"
    assert "5 ticket(s) exported" in run(app, "export", "tickets", "--format", fmt, "--status", "open",
                                          "--out", str(out))
    back = read_export(out.read_text(encoding="utf-8"), fmt)
    assert {t["status"] for t in back} <= set(OPEN_STATUSES) and len(back) == 5
    assert back == [t for t in expected if t["status"] in OPEN_STATUSES]


def test_csv_keeps_awkward_values():
    rows = [{"key": "HC-1", "subject": '12', "reporter": "a@b.c", "response_met": None, "message_count": 3,
             "body": 'line1\nline2, "quoted"', "messages": [{"body": "[1] null"}], "flag": True, "empty": "",
             "looks": '{"not": "an object"}', "dash": "- item"}]
    assert read_export(to_csv_text(rows), "csv") == rows
    assert read_export(to_json_text(rows), "json") == rows


def test_kb_drafts_group_an_incident_into_one_article(make_app, clock, tmp_path, db_url):
    """Issue 16: an incident's reports are one article (neutral title, one resolution); the other
    resolved tickets are grouped by a meaningful topic word; the rest is listed, never an article."""
    from desk_kit import TIM, desk_config, report, team_reply
    from test_status_page import storm

    app = make_app(desk_config(tmp_path, db_url=db_url))
    keys = storm(app, clock)
    team_reply(app, keys[0], "#resolve The SSO proxy was restarted; call Tim on +49 30 1234567.", sender=TIM.email)
    clock.advance(hours=2)
    invoices = []
    for n in range(2):  # a day apart, the first resolved: two tickets on one topic, not an incident
        invoices.append(report(app, (f"Invoice PDF {n} shows the wrong VAT", "The VAT rate on the PDF is 16 %."),
                               sender=f"acc{n}@customer.example"))
        team_reply(app, invoices[-1], "#resolve Fixed in the template.", sender=TIM.email)
        clock.advance(days=1)
    single = report(app, ("Typo on the account page", "There is a typo in the label."), sender="t@customer.example")
    team_reply(app, single, "#resolve Fixed the label.", sender=TIM.email)
    out = tmp_path / "kb"
    assert "2 draft(s) written to" in run(app, "kb", "draft", "--out", str(out))
    files = {p.name: p.read_text() for p in out.glob("*.md")}
    assert set(files) == {"index.md", "incident-inc-1.md", "invoice.md"}, set(files)
    article = files["incident-inc-1.md"]
    assert article.startswith("# Incident INC-1: CRM down (")
    assert "(incident INC-1: 8 reports of one problem)" in article
    assert article.count("The SSO proxy was restarted") == 1 and "[phone]" in article  # one resolution, redacted
    assert all(f"[{k}](" in article for k in keys) and "Maria" not in article and "Tim" not in article
    assert "@customer.example" not in everything_of(files)
    assert "fallback" not in everything_of(files) and "unclassified" not in everything_of(files)
    index = files["index.md"]
    assert "| Incident INC-1: CRM down (" in index and "| 8 | [incident-inc-1.md](incident-inc-1.md) |" in index
    assert f"[{single}](" in index.split("## Single tickets")[1]
