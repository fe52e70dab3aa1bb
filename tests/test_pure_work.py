"""Pure work off the storing process (issue 17): verdicts from the parse worker, header facts by need.

The verdict depends only on the mail, the rules and the time it arrived, so ``poll --once``'s
parse worker computes it (``classify_in_worker``) and the storing process only stores; and the
facts carry only the headers some rule reads (``Classifier.header_names``), with the same verdict.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from mailkit import make_mail
from sqlalchemy import select

from classifier import Classifier, MailFacts
from classifier.mailfile import parse_bytes
from classifier.rules import DEFAULT_RULES
from config import Config
from config.settings import RulesSettings
from intake.pipeline import RawMail, classify_in_worker, parse_mails
from tickets.models import Event, OutboxItem, Ticket
from tickets.tokens import REPLY_TOKEN_LENGTH

LABELLED = Path(__file__).parent / "data" / "labelled"
WHEN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_header_names_are_the_headers_some_rule_reads(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('''
[[rule]]
name = "vip"
description = "a VIP sender"
severity = "P2"
header = { "X-VIP" = "yes" }

[[rule]]
name = "nested"
description = "export trouble, urgent or not spam"
severity = "P3"
all = [{ keywords = ["export"] },
       { any = [{ header = { Importance = "high" } }, { not = [{ header = { "X-Spam" = "*" } }] }] }]

[[rule]]
name = "words-only"
description = "a question"
severity = "P4"
keywords = ["question"]
''', encoding="utf-8")
    classifier = Classifier.from_files([rules])
    assert classifier.header_names == {"x-vip", "importance", "x-spam"}
    assert {"importance", "priority", "x-priority"} <= Classifier.from_files([DEFAULT_RULES]).header_names


def test_facts_with_only_the_read_headers_give_the_same_verdict() -> None:
    classifier = Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin")
    mails = sorted(LABELLED.glob("*.eml"))[::3]  # every third: >2,000 mails of every author, a third of the time
    assert len(mails) > 100
    for path in mails:
        parsed = parse_bytes(path.read_bytes())
        full = MailFacts.from_parsed(parsed, WHEN)
        lean = MailFacts.from_parsed(parsed, WHEN, classifier.header_names)
        assert set(lean.headers) <= classifier.header_names
        assert classifier.classify(lean) == classifier.classify(full), path.name
    urgent = parse_bytes(make_mail(headers={"Importance": "High", "X-Mailer": "x"}))
    lean = MailFacts.from_parsed(urgent, WHEN, classifier.header_names)
    assert lean.headers == {"importance": "High"}


def test_the_parse_worker_classifies_and_the_store_uses_its_verdict(make_app, tmp_path, monkeypatch):
    app = make_app(db=f"sqlite:///{tmp_path / 'w.db'}")
    app.pipeline  # noqa: B018 - the opener exists before the worker is forked
    # Four different problems: one report four times would be an incident (issue 14), whose later reports
    # go the per-message way.
    problems = ("Export button does nothing", "Invoice layout shifted", "Logo blurry in footer",
                "Dashboard tile shows zero")
    mails = [RawMail(make_mail(message_id=f"w{i}@customer.example", sender=f"u{i}@customer.example",
                               subject=f"{problem} #{i}", body=f"{problem}."))
             for i, problem in enumerate(problems)]
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                               initializer=classify_in_worker, initargs=(app.opener,))
    with pool:
        prepared = pool.submit(parse_mails, mails, 1024, WHEN).result()
    expected = [p.verdict for p in parse_mails(mails, 1024, WHEN, opener=app.opener)]  # classified here
    assert [p.verdict for p in prepared] == expected and all(v is not None for v in expected)

    def not_here(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("classified in the storing process")

    monkeypatch.setattr(app.opener.classifier, "classify", not_here)
    results = app.pipeline.ingest_batch(mails, prepared=prepared)
    assert [r.action for r in results] == ["created"] * 4
    with app.store.read() as s:
        stored = [t.classification for t in s.scalars(select(Ticket).order_by(Ticket.number))]
    assert stored == [v.to_json() for v in expected]


def test_a_mail_stored_one_by_one_uses_the_workers_verdict_too(make_app, tmp_path, monkeypatch):
    """A P1 that pages at once and the later reports of one incident leave the batched write path; they were
    classified a second time in the storing process."""
    app = make_app(db=f"sqlite:///{tmp_path / 'w.db'}")
    app.pipeline  # noqa: B018 - the opener exists before the worker is forked
    outage = RawMail(make_mail(message_id="down@customer.example", sender="lead@customer.example",
                               subject="CRM down for everyone",
                               body="Nobody in the company can log in since 9:00, all sales work has stopped."))
    reports = [RawMail(make_mail(message_id=f"r{i}@customer.example", sender=f"u{i}@customer.example",
                                 subject="Export button does nothing", body="The export button does nothing."))
               for i in range(3)]
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                               initializer=classify_in_worker, initargs=(app.opener,))
    with pool:
        prepared = pool.submit(parse_mails, [outage, *reports], 1024, WHEN).result()
    assert prepared[0].verdict.severity == "P1"

    def not_here(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("classified in the storing process")

    monkeypatch.setattr(app.opener.classifier, "classify", not_here)
    stored_one_by_one = []
    real_one = app.pipeline._ingest_one
    monkeypatch.setattr(app.pipeline, "_ingest_one",
                        lambda session, mail, *rest: stored_one_by_one.append(mail) or real_one(session, mail, *rest))
    results = app.pipeline.ingest_batch([outage, *reports], prepared=prepared)
    assert [r.action for r in results] == ["created"] * 4, [r.detail for r in results]
    assert outage in stored_one_by_one and reports[1] in stored_one_by_one  # the per-message path was taken
    with app.store.read() as s:
        stored = {t.subject: t.classification for t in s.scalars(select(Ticket))}
    assert stored["CRM down for everyone"] == prepared[0].verdict.to_json()


def test_a_reply_token_the_worker_saw_is_not_stored_in_the_verdicts_evidence(make_app, tmp_path):
    """A mail carrying a reply token (a plus-address, a token in the body) is stored one by one, its tokens
    redacted first; the worker classified it with the tokens, and a rule's evidence quotes what it matched.
    Such a mail is classified again from what is kept (hostile: a forged token, opening a new ticket)."""
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "to-desk"\ndescription = "mail to the desk"\nrole = "crm_admin"\n'
                     'recipients = ["localhost"]\n\n[[rule]]\nname = "code"\ndescription = "a reference"\n'
                     'severity = "P3"\nregex = [\'hc-\\d+\\.[0-9a-f]+\']\n', encoding="utf-8")
    app = make_app(dataclasses.replace(Config(base_dir=tmp_path), rules=RulesSettings(file=str(rules))),
                   db=f"sqlite:///{tmp_path / 'w.db'}")
    token = ("a1" * 20)[:REPLY_TOKEN_LENGTH]
    mails = [RawMail(make_mail(message_id="a@customer.example", subject="Export broken",
                               body=f"The export fails, my old reference HC-999.{token} says nothing.")),
             RawMail(make_mail(message_id="b@customer.example", subject="Import broken", body="The import fails.",
                               to=f"support+HC-999.{token}@localhost"))]
    prepared = parse_mails(mails, 1024, WHEN, opener=app.opener)  # as the worker does: with the tokens
    assert all(token in str(p.verdict.to_json()) for p in prepared)
    assert [r.action for r in app.pipeline.ingest_batch(mails, prepared=prepared)] == ["created"] * 2
    with app.store.read() as s:
        tickets = list(s.scalars(select(Ticket)))
        events = list(s.scalars(select(Event)))
    by_subject = {t.subject: str(t.classification) for t in tickets}
    assert "hc-999.redacted@localhost" in by_subject["Import broken"]  # classified from what is kept
    assert not any(token in str(t.classification) or token in str(t.triage) for t in tickets)
    assert not any(token in f"{e.detail} {e.data}" for e in events)


def test_without_a_worker_nothing_is_precomputed():
    parsed = parse_mails([RawMail(make_mail())], 1024, WHEN)[0]
    assert not isinstance(parsed, str) and parsed.verdict is None


def test_the_parse_worker_detects_the_language_and_the_acknowledgement_uses_it(make_app, tmp_path, monkeypatch):
    """lingua's detection was a tenth of the storing process's time per ticket; it needs only the mail."""
    app = make_app(db=f"sqlite:///{tmp_path / 'l.db'}")
    app.pipeline  # noqa: B018 - the opener exists before the worker is forked
    german = RawMail(make_mail(message_id="de1@customer.example", sender="jonas@kunde.example",
                               subject="Export der Angebote funktioniert nicht",
                               body="Seit heute Morgen bricht der Export der Angebote ab. Können Sie sich das "
                                    "bitte ansehen? Die Schaltfläche reagiert überhaupt nicht mehr."))
    english = RawMail(make_mail(message_id="en1@customer.example", sender="mary@customer.example",
                                subject="Invoice layout shifted", body="The invoice layout shifted to the right."))
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                               initializer=classify_in_worker, initargs=(app.opener,))
    with pool:
        prepared = pool.submit(parse_mails, [german, english], 1024, WHEN).result()
    assert [p.language for p in prepared] == ["de", "en"]

    def not_here(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("language detected in the storing process")

    monkeypatch.setattr("notifier.acknowledgement.detect_language", not_here)
    results = app.pipeline.ingest_batch([german, english], prepared=prepared)
    assert [r.action for r in results] == ["created"] * 2
    with app.store.read() as s:
        subjects = [o.subject for o in s.scalars(select(OutboxItem).order_by(OutboxItem.id))]
    assert len(subjects) == 2 and "Angebote" in subjects[0] and subjects[0] != subjects[1]
    monkeypatch.undo()
    app_de = make_app(db=f"sqlite:///{tmp_path / 'l2.db'}")  # without a worker it is detected here: same words
    app_de.pipeline.ingest(german.raw)
    with app_de.store.read() as s:
        assert s.scalar(select(OutboxItem.subject)) == subjects[0]


def _mixed_mails(count: int) -> list[RawMail]:
    """English and German requests, and one unparseable in the middle: every kind of outcome of a part."""
    mails = []
    for i in range(count):
        if i % 2:
            body = "Seit heute Morgen bricht der Export der Angebote ab. Können Sie sich das bitte ansehen?"
        else:
            body = f"The invoice layout shifted to the right on record {i}."
        mails.append(RawMail(make_mail(message_id=f"p{i}@customer.example", sender=f"u{i % 7}@customer.example",
                                       subject=f"Problem number {i}", body=body)))
    mails[count // 2] = RawMail(b"\x00" * 10)
    return mails


def _outcomes(prepared):  # type: ignore[no-untyped-def]
    return [p if isinstance(p, str) else (p.message_id, repr(p.verdict), p.language) for p in prepared]


def test_the_storing_process_parses_what_the_busy_worker_has_not_begun(make_app, tmp_path):
    """``ParsePool``: a part the worker has not begun is parsed and classified in the storing process when it
    would otherwise wait, with the same verdict and language; the order of the mails is kept."""
    import time

    from intake.parse_pool import ParsePool

    app = make_app(db=f"sqlite:///{tmp_path / 'p.db'}")
    app.pipeline  # noqa: B018 - the opener exists before the worker is forked
    mails = _mixed_mails(130)  # six parts: the last one short
    expected = _outcomes(parse_mails(mails, app.config.intake, WHEN, opener=app.opener))
    assert any(o[2] == "de" for o in expected if not isinstance(o, str)) and any(isinstance(o, str) for o in expected)
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                                   initializer=classify_in_worker, initargs=(app.opener,))
    pool = ParsePool(executor, app.opener)
    try:
        busy = pool.submit(time.sleep, 1.0)  # the worker is busy: every part but the one queued behind is taken
        first, second = pool.parse(mails[:60], app.config.intake, WHEN), pool.parse(mails[60:], app.config.intake, WHEN)
        got = first.result() + second.result()
        assert not busy.done() or pool.taken_back  # it was taken back while the worker slept
        assert _outcomes(got) == expected
        assert 80 <= pool.taken_back < 130  # the first part was handed to the worker before it could be taken
        idle = ParsePool(executor, app.opener)  # an idle worker: everything comes back from it
        job = idle.parse(mails, app.config.intake, WHEN)
        [f.result() for f in (p.future for p in job.parts) if f is not None]
        assert _outcomes(job.result()) == expected and idle.taken_back == 0
    finally:
        pool.shutdown(cancel_futures=True)


def test_a_dead_worker_costs_speed_never_mail(make_app, tmp_path):
    """A worker that died: ``result()`` raises, and the drain parses the batch in process (``_result``)."""
    import os
    import signal

    from intake.parse_pool import ParsePool
    from intake.receive.imap_poller import _result

    app = make_app(db=f"sqlite:///{tmp_path / 'd.db'}")
    app.pipeline  # noqa: B018
    executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                                   initializer=classify_in_worker, initargs=(app.opener,))
    pool = ParsePool(executor, app.opener)
    try:
        worker = pool.submit(os.getpid).result()
        os.kill(worker, signal.SIGKILL)
        job = pool.parse(_mixed_mails(60), app.config.intake, WHEN)
        assert _result(job) is None  # the pipeline then parses the batch itself
        results = app.pipeline.ingest_batch(_mixed_mails(60), prepared=_result(job))
        assert [r.action for r in results].count("created") == 59
    finally:
        pool.shutdown(cancel_futures=True)
