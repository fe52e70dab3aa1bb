"""The built-in rules on the labelled go-live set: the accuracy the issue promises."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from classifier import Classifier
from classifier.evaluation import evaluate, format_report, read_labels
from config import Config, HypercareSettings

LABELLED = Path(__file__).parent / "data" / "labelled"


def test_labelled_set_covers_every_severity_and_role() -> None:
    rows = read_labels(LABELLED)
    assert len(rows) >= 80
    assert set(Counter(r[1] for r in rows)) == {"P1", "P2", "P3", "P4"}
    assert set(Counter(r[2] for r in rows)) == {
        "crm_admin", "business_analyst", "technical_consultant", "project_manager"}


def test_default_rules_reach_the_promised_accuracy() -> None:
    config = Config(hypercare=HypercareSettings(timezone="Europe/Berlin"))
    report = evaluate(Classifier.from_config(config), LABELLED, datetime(2026, 11, 23, 9, tzinfo=UTC))
    assert report.severity_accuracy >= 0.90, format_report(report)
    assert report.role_accuracy >= 0.80, format_report(report)
    # Nearly no P1 missed on this set. Not none: the eight author batches 530-1781 were added without
    # tuning the rules on them (classifier/README.md, "Leave one author out"); the learned weights, which
    # were trained on them, find all but a few of their P1s (7 of 455 when this was written).
    missed = sum(n for (label, got), n in report.severity_confusion.items() if label == "P1" and got != "P1")
    assert missed <= 0.02 * sum(n for (label, _), n in report.severity_confusion.items() if label == "P1"), \
        format_report(report)
