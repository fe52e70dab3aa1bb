"""Issue 17 with ``[incidents]`` on: a report that shares the classifier rule and role with a recent one but
joins nothing is stored by the batched write path; only a report that joins an incident (a stored report
or another report of the same batch) goes the per-message way, and groups exactly as it does there."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from desk_kit import desk_config
from mailkit import made_up_words, make_mail
from sqlalchemy import select

from config import Config, RulesSettings
from intake.batch_store import BatchStore
from intake.pipeline import RawMail
from tickets.models import Event, Incident, OutboxItem, Ticket

# One problem, reported twice in other words (shared terms: export, wizard, invoices).
REPORTS = (("Export wizard broken", "The export wizard is broken, invoices cannot be exported."),
           ("Export wizard is broken", "The invoices export wizard is broken, nothing is exported."))


def unrelated(count: int, seed: int = 17) -> list[tuple[str, str]]:
    """Requests of the same rule ("broken": defect) and topic, each its own problem: no other word shared."""
    rng = random.Random(seed)
    word = made_up_words(rng)

    return [(f"{word().capitalize()} {word()}", f"The {word()} {word()} is broken.") for _ in range(count)]


def rules_only(tmp_path: Any, db_url: str) -> Config:
    """The rules alone: every mail here must share one rule and owner, which the rules give from "broken";
    the learned weights would weigh each made-up subject's neighbours (what is tested is the batching)."""
    return dataclasses.replace(desk_config(tmp_path, db_url=db_url), rules=RulesSettings(learned="off"))


def mails(texts: list[tuple[str, str]], prefix: str) -> list[RawMail]:
    return [RawMail(make_mail(subject=s, body=b, sender=f"{prefix}{i}@customer{i % 3}.example",
                              to="support@example.com", message_id=f"{prefix}{i}@customer.example"))
            for i, (s, b) in enumerate(texts)]


@pytest.fixture
def batched(monkeypatch):  # type: ignore[no-untyped-def]
    """The tickets of each run the batched write path stored."""
    runs: list[list[str]] = []
    original = BatchStore._write

    def spy(self, opened):  # type: ignore[no-untyped-def]
        original(self, opened)
        runs.append([new.ticket["subject"] for new in opened])

    monkeypatch.setattr(BatchStore, "_write", spy)
    return runs


def outcome(app: Any) -> list[tuple[Any, ...]]:
    """Per ticket: rule, role, incident and its linking events; then every queued mail (acks, pages, notices)."""
    with app.store.read() as s:
        rows: list[tuple[Any, ...]] = []
        for t in s.scalars(select(Ticket).order_by(Ticket.number)):
            incident = s.get(Incident, t.incident_id) if t.incident_id else None
            rows.append((t.key, t.subject, t.severity, t.role, t.incident_rule, t.incident_terms,
                         incident.key if incident else None, incident.title if incident else None))
            rows.extend((e.kind, e.detail, e.data) for e in s.scalars(
                select(Event).where(Event.ticket_id == t.id, Event.kind.like("incident%")).order_by(Event.id)))
        mail = [(o.kind, o.ticket.key if o.ticket else None, o.recipients, o.subject)
                for o in s.scalars(select(OutboxItem).order_by(OutboxItem.id))]
        # A batch's triage notices leave on the next beat (TriageNotices.sweep): compared as a set.
        return rows + [m for m in mail if m[0] != "triage"] + sorted(m for m in mail if m[0] == "triage")


def test_reports_of_one_rule_that_join_nothing_are_stored_by_the_batched_path(make_app, clock, tmp_path,
                                                                                db_url, batched):
    app = make_app(rules_only(tmp_path, db_url))
    texts = unrelated(12)
    results = app.pipeline.ingest_batch(mails(texts, "u"))
    assert [r.action for r in results] == ["created"] * 12
    with app.store.read() as s:
        tickets = list(s.scalars(select(Ticket).order_by(Ticket.number)))
        assert {(t.incident_rule, t.role) for t in tickets} == {("defect", tickets[0].role)}  # one rule and role
        assert s.scalar(select(Incident.id)) is None
    assert batched == [[s for s, _ in texts]]  # one run: none of them went the per-message way
    clock.advance(minutes=5)  # a later batch: the first twelve are stored, within the window
    more = unrelated(30, seed=18)
    assert [r.action for r in app.pipeline.ingest_batch(mails(more, "v"))] == ["created"] * 30
    assert batched[1:] == [[s for s, _ in more]]


def test_a_batch_holding_reports_of_one_problem_groups_as_the_per_message_path(make_app, clock, tmp_path, db_url,
                                                                               batched):
    """Two reports of one problem in one batch, a third that matches a stored one, among unrelated requests of
    the same rule and role: the same incidents, link reasons and mails as when every mail goes one by one."""
    first, later = unrelated(4), unrelated(8, seed=19)
    batch = [*later[:3], REPORTS[0], *later[3:5], REPORTS[1], *later[5:]]
    third = ("Export wizard still broken", "The export wizard is broken, invoices cannot be exported.")

    def run(app: Any) -> list[tuple[Any, ...]]:
        for prefix, texts in (("a", first), ("b", batch), ("c", [*unrelated(3, seed=20), third])):
            assert {r.action for r in app.pipeline.ingest_batch(mails(texts, prefix))} == {"created"}
            app.triage.sweep()  # the beat between two batches: the batched tickets' triage notices
            clock.advance(minutes=3)
        return outcome(app)

    start = clock.now()
    fast = run(make_app(rules_only(tmp_path / "fast", db_url)))
    fast_runs = [list(r) for r in batched]
    batched.clear()
    clock.set(start)  # the same times for the reference run
    slow_app = make_app(rules_only(tmp_path / "slow", f"sqlite:///{tmp_path / 'slow.db'}"))
    slow_app.opener.batch_forms = {}  # no batch forms: every mail the per-message way (the reference)
    assert run(slow_app) == fast
    assert batched == []
    # One rule and topic for all; one incident: the two reports of the batch and the third.
    tickets = [row for row in fast if len(row) == 8]
    assert len(tickets) == 4 + 10 + 4 and {(row[3], row[4]) for row in tickets} == {("crm_admin", "defect")}
    assert {row[1]: row[6] for row in tickets if row[6]} == {
        REPORTS[0][0]: "INC-1", REPORTS[1][0]: "INC-1", third[0]: "INC-1"}
    assert sum(row[0] == "ack_known" for row in fast if len(row) == 4) == 2  # the two later reports
    # Only the reports that join went the per-message way; the rest of each batch was batched.
    assert [s for run_ in fast_runs for s in run_] == [
        *[s for s, _ in first], *[s for s, _ in batch if s != REPORTS[1][0]], *[s for s, _ in unrelated(3, seed=20)]]
