"""Issue 15 end to end: the axes and ``uncertain`` on the ticket, in ``show``, the team notice and the
dashboard; #severity confirms; corrections are kept with their evidence and feed
``rules eval --overrides`` and ``rules suggest``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
from email import message_from_bytes, policy

from desk_kit import ADA, desk_config, report, team_reply, ticket
from sqlalchemy import select

from classifier import Classifier
from classifier.cli import cmd_eval, cmd_suggest
from classifier.rules import DEFAULT_RULES
from config import RulesSettings
from tickets.models import Correction, OutboxItem

WEAK_P1 = ("Question about this morning", "Since 8 the CRM is down here, maybe only a glitch")
STRONG_P1 = ("CRM is down", "Nobody can log in since 8am, the whole company is waiting.")
MAINTENANCE = ("CRM", "still the maintenance screen when agents open it, they are sitting idle")


def _page_text(app, ticket_id: int) -> str:  # type: ignore[no-untyped-def]
    """The text part of the team page queued for a new P1."""
    with app.store.read() as s:
        item = s.scalars(select(OutboxItem).where(OutboxItem.kind == "escalation",
                                                  OutboxItem.ticket_id == ticket_id)).first()
        assert item is not None, "a new P1 pages the team"
        mail = message_from_bytes(item.mime, policy=policy.default)
    return str(mail.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def test_axes_and_uncertain_are_stored_shown_and_asked_about(make_app, tmp_path, db_url):
    # Rules only: the built-in weights are sure of this P1 and settle the rules' doubt (test below).
    app = make_app(dataclasses.replace(desk_config(tmp_path, db_url=db_url), rules=RulesSettings(learned="off")))
    key = report(app, WEAK_P1)
    row = ticket(app, key)
    assert row.severity == "P1" and row.uncertain
    assert row.triage["hit"]["value"] == "outage" and row.triage["scope"]["value"] == "all"
    assert row.triage["doubts"] and row.triage["doubts"][0].startswith("P1 rests on one word")

    text = _page_text(app, row.id)
    assert "UNCERTAIN" in text and f"#severity {row.severity}" in text
    assert 'who is affected: everyone or customers (outage: body "crm is down")' in text
    assert "what is hit:     outage" in text

    from tickets.cli import cmd_show

    assert cmd_show(app, argparse.Namespace(key=key, json=False)) == 0
    shown = app.out.getvalue()
    assert "uncertain:     yes; confirm or change with #severity" in shown
    assert "who is affected: everyone or customers" in shown
    assert cmd_show(app, argparse.Namespace(key=key, json=True)) == 0
    data = json.loads(app.out.getvalue()[len(shown):])
    assert data["uncertain"] is True and data["triage"]["hit"]["value"] == "outage"

    from dashboard.pages import overview_html, ticket_html
    from dashboard.summary import DashboardContext

    ctx = DashboardContext(config=app.config, sla=app.sla, go_live=app.go_live, now=app.clock.now())
    with app.store.read() as s:
        html = overview_html(s, ctx, app.renderer, static=True)
        page = ticket_html(s, ctx, app.renderer, s.merge(row))
    listed = html.split('id="uncertain"')[1].split("</section>")[0]
    assert key in listed and "Uncertain verdicts (1)" in html
    assert "Uncertain verdict: the owner confirms" in page and "who is affected: everyone or customers" in page

    team_reply(app, key, "#severity P1")
    confirmed = ticket(app, key)
    assert not confirmed.uncertain and confirmed.severity == "P1"
    assert [e.kind for e in confirmed.events if e.kind == "severity_confirmed"] == ["severity_confirmed"]


def test_the_built_in_weights_settle_a_doubt_of_the_rules(make_app, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    row = ticket(app, report(app, WEAK_P1))
    assert row.severity == "P1" and not row.uncertain and row.triage["doubts"] == []

    from tickets.cli import cmd_show

    assert cmd_show(app, argparse.Namespace(key=row.key, json=False)) == 0
    assert "settled by the learned weights: P1 rests on one word" in app.out.getvalue()


def test_a_confident_verdict_is_not_flagged(make_app, tmp_path, db_url):
    app = make_app(desk_config(tmp_path, db_url=db_url))
    row = ticket(app, report(app, STRONG_P1))
    assert row.severity == "P1" and not row.uncertain and row.triage["doubts"] == []
    text = _page_text(app, row.id)
    assert "UNCERTAIN" not in text and "who is affected: everyone or customers" in text


def test_corrections_are_kept_with_evidence_and_feed_overrides_and_suggest(make_app, tmp_path, db_url):
    # Rules only: the built-in learned weights already make these mails P1 (nothing left to correct).
    app = make_app(dataclasses.replace(desk_config(tmp_path, db_url=db_url), rules=RulesSettings(learned="off")))
    mails = [("Lagerbestand", f"Der Lagerbestand im Shop {n} ist seit heute tot, die Schnittstelle meldet nichts")
             for n in range(3)]
    keys = [report(app, mail, sender=f"user{n}@customer.example") for n, mail in enumerate(mails)]
    for key in keys:
        team_reply(app, key, "#severity P1\n#assign business_analyst")
    with app.store.read() as s:
        rows = s.query(Correction).order_by(Correction.id).all()
        assert [(r.kind, r.new, r.actor) for r in rows[:2]] == [("severity", "P1", ADA.email),
                                                                ("role", "business_analyst", ADA.email)]
        evidence = rows[0].evidence
        assert "lagerbestand" in evidence["text"].lower() and evidence["subject"] == "Lagerbestand"
        assert evidence["classification"] and evidence["triage"]["scope"]["value"]
        assert rows[0].original == ticket(app, keys[0]).original_severity

    assert cmd_eval(app, argparse.Namespace(dir=None, overrides=True, rules=None)) == 0
    out = app.out.getvalue()
    assert "severity (rows = the team's, columns = the rules'):" in out
    p1_row = next(line for line in out.splitlines() if line.startswith("P1 "))
    assert p1_row.split()[1:] == ["0", "0", "3", "0"]  # three P3 verdicts the team made P1

    app.out.seek(0)
    app.out.truncate()
    assert cmd_suggest(app, argparse.Namespace(min_support=2)) == 0
    suggestions = app.out.getvalue()
    assert "keywords to add: 3 tickets the team raised to P1" in suggestions
    assert "lagerbestand" in suggestions
    # what it prints is a rule file a person can paste: it parses and loads next to the built-in rules
    toml = "\n".join(line for line in suggestions.splitlines() if not line.startswith("#"))
    tomllib.loads(toml)
    site = tmp_path / "suggested.toml"
    site.write_text(toml, encoding="utf-8")
    learnt = Classifier.from_files([DEFAULT_RULES, site])
    from classifier import MailFacts

    verdict = learnt.classify(MailFacts("Lagerbestand", "Lagerbestand Schnittstelle tot", "x@customer.example"))
    assert verdict.severity == "P1"


def test_suggest_with_nothing_to_learn_and_a_bad_minimum(make_app, tmp_path):
    app = make_app(desk_config(tmp_path))
    assert cmd_suggest(app, argparse.Namespace(min_support=2)) == 0
    assert "0 corrections kept; no suggestion yet" in app.out.getvalue()
    assert cmd_suggest(app, argparse.Namespace(min_support=0)) == 2


def test_hostile_mail_text_cannot_break_the_suggested_rule_file(make_app, tmp_path):
    app = make_app(desk_config(tmp_path))
    hostile = 'Zugriff "quoted" \\ back\\slash \x00 nul ' + "wiederholt " * 3000
    keys = [report(app, (f"Anliegen {n}", hostile), sender=f"h{n}@customer.example") for n in range(2)]
    for key in keys:  # handed to one owner by the team: a "keywords to add" suggestion from the mails' words
        team_reply(app, key, "#assign project_manager")
    assert cmd_suggest(app, argparse.Namespace(min_support=2)) == 0
    assert "keywords to add: 2 tickets the team handed to project_manager" in app.out.getvalue()
    toml = "\n".join(line for line in app.out.getvalue().splitlines() if not line.startswith("#"))
    tomllib.loads(toml)
