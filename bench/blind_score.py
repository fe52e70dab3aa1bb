"""Score a blind set with the built-in classifier, printing aggregates only.

Why a script of its own: ``hypercare rules eval`` lists the mismatched mails, and whoever reads
those lines stops being blind to the set. This prints accuracy, the severity confusion counts,
P1 recall and precision, the fallback share and P4 mails raised above P3, never a file name
or a word of a mail.

    .venv/bin/python bench/blind_score.py tests/data/blind2 [--learned off]
    .venv/bin/python bench/blind_score.py tests/data/blind*      # one line per set, then all pooled
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
from classifier.evaluation import SEVERITIES, confusion_table, evaluate, pooled
from config import Config, HypercareSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+", metavar="folder")
    parser.add_argument("--learned", default="", help='"off" for the rules alone (default: built-in weights)')
    args = parser.parse_args(argv)
    config = Config(hypercare=HypercareSettings(timezone="Europe/Berlin"))
    if args.learned:
        config = dataclasses.replace(config, rules=dataclasses.replace(config.rules, learned=args.learned))
    now = datetime(2026, 11, 30, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    classifier = Classifier.from_config(config)
    reports = {folder.name: evaluate(classifier, folder, now) for folder in args.folders}
    if len(reports) > 1:
        for name, one in reports.items():
            found, p1, called = one.p1_counts()
            print(f"{name}: {one.total} mails, severity {one.severity_accuracy:.1%}, role {one.role_accuracy:.1%}, "
                  f"P1 {found}/{p1}, {called} called P1")
        print(f"pooled over {len(reports)} sets:")
    report = pooled(reports) if len(reports) > 1 else next(iter(reports.values()))
    # The aggregate lines of ``format_report`` (accuracy, the target figures, the severity confusion),
    # never its per-mail lines.
    print(f"mails {report.total}: severity {report.severity_accuracy:.1%} "
          f"({report.severity_correct}/{report.total}), role {report.role_accuracy:.1%} "
          f"({report.role_correct}/{report.total})")
    print("\n".join(report.target_lines()))
    print("\n".join(confusion_table(report.severity_confusion, SEVERITIES)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
