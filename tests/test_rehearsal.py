"""Issue 14: a four-week rehearsal on the frozen clock (what ``--now`` moves) keeps every team member's
mail under the budget written in docs/performance.md ("Team mail budget")."""

from __future__ import annotations

import re
from pathlib import Path

from bench.rehearsal import TEAM, Rehearsal

ROOT = Path(__file__).resolve().parents[1]


def documented_budget() -> int:
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    match = re.search(r"budget: at most (\d+) mails per team member", text)
    assert match, "docs/performance.md must state the budget"
    return int(match.group(1))


def test_four_week_rehearsal_stays_under_the_documented_mail_budget(tmp_path):
    figures = Rehearsal(tmp_path).run()
    budget = documented_budget()
    assert figures["new_mails"] == 48 and figures["replies"] >= 75
    assert all(n <= budget for n in figures["per_person"].values()), figures["per_person"]
    kinds = {kind for counter in figures["per_kind"].values() for kind in counter}
    assert "confirmation" not in kinds and "reporter_update" not in kinds  # no "Done:", thank-yous stay quiet
    # Every team member still hears what is theirs: the owner roles get triage notices, the PM the CIO's reply.
    assert figures["per_kind"][TEAM[0].email]["triage"] > 0
    assert figures["per_kind"][TEAM[3].email]["stakeholder_reply"] == 1


def test_the_rehearsal_with_p3_p4_notices_batched_stays_under_the_budget_and_batches_them(tmp_path):
    """``[triage] low_severity = "digest"``: the P3/P4 notices become digests at 09:00/14:00 (figures with and
    without in docs/performance.md); P2 notices still go out one by one, at creation."""
    figures = Rehearsal(tmp_path, triage="digest").run()
    assert all(n <= documented_budget() for n in figures["per_person"].values()), figures["per_person"]
    ada, olga = figures["per_kind"][TEAM[0].email], figures["per_kind"][TEAM[2].email]
    assert ada["triage_digest"] > 0 and olga["triage_digest"] > 0
    assert figures["triage_by_severity"].keys() <= {"P2"}  # no P3/P4 notice one by one
    assert figures["triage_by_severity"]["P2"] > 0
