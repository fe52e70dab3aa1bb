"""Score a blind set with the built-in classifier, printing aggregates only.

Why a script of its own: ``hypercare rules eval`` lists the mismatched mails, and whoever reads
those lines stops being blind to the set. This prints accuracy, the severity confusion counts,
P1 recall and precision, the fallback share and P4 mails raised above P3, never a file name
or a word of a mail.

    .venv/bin/python bench/blind_score.py tests/data/blind2 [--learned off]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier import Classifier
from classifier.evaluation import evaluate
from config import Config, HypercareSettings

SEVERITIES = ("P1", "P2", "P3", "P4")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--learned", default="", help='"off" for the rules alone (default: built-in weights)')
    args = parser.parse_args(argv)
    config = Config(hypercare=HypercareSettings(timezone="Europe/Berlin"))
    if args.learned:
        config = dataclasses.replace(config, rules=dataclasses.replace(config.rules, learned=args.learned))
    now = datetime(2026, 11, 30, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    report = evaluate(Classifier.from_config(config), args.folder, now)
    n = report.total
    confusion = report.severity_confusion
    print(f"mails {n}: severity {report.severity_correct}/{n} = {100 * report.severity_correct / n:.1f} %, "
          f"role {report.role_correct}/{n} = {100 * report.role_correct / n:.1f} %")
    print("severity (rows = label)  " + "  ".join(SEVERITIES))
    for label in SEVERITIES:
        print(f"{label:24} " + "  ".join(f"{confusion.get((label, got), 0):2}" for got in SEVERITIES))
    found = confusion.get(("P1", "P1"), 0)
    labelled = sum(count for (label, _), count in confusion.items() if label == "P1")
    paged = sum(count for (_, got), count in confusion.items() if got == "P1")
    print(f"P1 recall {found}/{labelled}, precision {found}/{paged}")
    print(f"fallback-severity {len(report.unmatched)}/{n} = {100 * len(report.unmatched) / n:.1f} %")
    raised = sum(confusion.get(("P4", got), 0) for got in ("P1", "P2"))
    print(f"P4 mails above P3: {raised}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
