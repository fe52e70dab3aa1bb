"""Does a small learned model generalise better than the keyword rules?  Leave-one-batch-out.

Why this script: the rules plateau on unseen mail (classifier/README.md, "Fresh tuning
batches"); tuning on each batch fits that batch and barely moves the next.  A linear model
over the classifier's own terms (normalised, Snowball-stemmed in EN/DE/FR, unigrams and
bigrams within a clause) is the smallest learned, still explainable, candidate.  Its honest
test is the same as the rules': train on everything labelled except one fresh batch, score
that batch, repeat for each of the four batches.

    .venv/bin/pip install scikit-learn      # offline only; the desk does not need it
    .venv/bin/python bench/classifier_learned.py [--labelled DIR] [--rules FILE ...]

Rows per held-out batch:
  rules   the rules given with --rules (default: the built-in rules of main 12824f0, i.e. never
          tuned on any fresh batch, plus the support-lead decision question = P3), scored on it;
  model   logistic regression (severity, role) trained on all other labelled mails;
  combo   rules where a rule decided (severity / role), the model where the rules fell back.
  combo+  combo, and the model's P1 probability >= --p1 raises the severity to P1.
Columns: severity %, role %, P1 recall, P1 precision, P4 mails classified P1/P2.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier import Classifier, MailFacts  # noqa: E402
from classifier.evaluation import read_labels  # noqa: E402
from classifier.fitting import DEFAULT_C, EXPORT_TERMS, train  # noqa: E402
from classifier.mailfile import facts_from_bytes  # noqa: E402
from classifier.training import terms_of  # noqa: E402
from classifier.verdict import FALLBACK_ROLE, FALLBACK_SEVERITY  # noqa: E402

BATCHES = ((330, 379), (380, 429), (430, 479), (480, 529))
README_BEFORE = ((48.0, 56.0, "1/13"), (52.0, 56.0, "3/13"), (60.0, 68.0, "4/13"), (58.0, 48.0, "3/13"))
BASELINE_REV = "12824f0"
QUESTION_P3 = '[matrix.hits]\nquestion = ["P3", "P3", "P3"]\n'
WHEN = datetime(2026, 11, 30, 8, tzinfo=UTC)


@dataclass
class Mail:
    name: str
    number: int
    severity: str
    role: str
    facts: MailFacts
    terms: dict[str, int]


def load(folder: Path) -> list[Mail]:
    mails = []
    for name, severity, role in read_labels(folder):
        facts = facts_from_bytes((folder / name).read_bytes(), WHEN)
        head = name.split("-", 1)[0]
        number = int(head) if head.isdigit() else -1  # 530-1781: the author batches (bench/classifier_cv.py)
        mails.append(Mail(name, number, severity, role, facts, terms_of(facts)))
    return mails


def baseline_rules(folder: Path) -> list[Path]:
    """Built-in rules of main before issue 15's tuning, plus the support-lead's question = P3."""
    rules = folder / "baseline.toml"
    rules.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{BASELINE_REV}:classifier/default_rules.toml"],
                                    check=True, capture_output=True, text=True).stdout, encoding="utf-8")
    decision = folder / "question-p3.toml"
    decision.write_text(QUESTION_P3, encoding="utf-8")
    return [rules, decision]


@dataclass
class Scores:
    severity: float
    role: float
    p1_found: int
    p1_total: int
    p1_said: int
    p4_high: int

    def row(self, label: str) -> str:
        precision = f"{self.p1_found}/{self.p1_said}" if self.p1_said else "-"
        return (f"{label:<15}{self.severity:>6.1f}{self.role:>7.1f}   {self.p1_found:>2}/{self.p1_total:<2}"
                f"   {precision:>6}   {self.p4_high:>3}")


def score(mails: list[Mail], severities: list[str], roles: list[str]) -> Scores:
    pairs = list(zip(mails, severities, strict=True))
    n = len(mails)
    return Scores(100 * sum(m.severity == s for m, s in pairs) / n,
                  100 * sum(m.role == r for m, r in zip(mails, roles, strict=True)) / n,
                  sum(m.severity == "P1" and s == "P1" for m, s in pairs), sum(m.severity == "P1" for m in mails),
                  severities.count("P1"), sum(m.severity == "P4" and s in ("P1", "P2") for m, s in pairs))


def mean(rows: Iterable[Scores]) -> Scores:
    rows = list(rows)
    k = len(rows)
    return Scores(sum(r.severity for r in rows) / k, sum(r.role for r in rows) / k,
                  sum(r.p1_found for r in rows), sum(r.p1_total for r in rows),
                  sum(r.p1_said for r in rows), sum(r.p4_high for r in rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labelled", type=Path, default=ROOT / "tests" / "data" / "labelled")
    parser.add_argument("--extra", type=Path, nargs="*", default=[ROOT / "tests" / "data" / "holdout"],
                        help="more labelled folders, always in training (default: the held-out set)")
    parser.add_argument("--rules", type=Path, nargs="*",
                        help=f"rule files (default: main {BASELINE_REV} + question=P3)")
    parser.add_argument("--c", type=float, default=DEFAULT_C, help="inverse regularisation of the logistic regression")
    parser.add_argument("--train", choices=("others", "earlier", "none"), default="others",
                        help="fresh batches in training: all others (leave-one-out), only earlier ones, none")
    parser.add_argument("--p1", type=float, default=0.5, help="learned P1 probability that raises to P1")
    parser.add_argument("--terms", type=int, default=EXPORT_TERMS, help="vocabulary size (as trained)")
    args = parser.parse_args()

    mails = load(args.labelled)
    extra = [m for folder in args.extra for m in load(folder)]
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.rules or baseline_rules(Path(tmp))
        rules = Classifier.from_files(paths)
        print(f"labelled: {len(mails)} mails, extra training: {len(extra)}; C={args.c}, {args.terms} terms per head, "
              f"fresh batches in training: {args.train}")
        print(f"{'':<15}{'sev%':>6}{'role%':>7}   P1 rec   P1 prec  P4>P3")
        totals: dict[str, list[Scores]] = {}
        for number, (first, last) in enumerate(BATCHES, start=1):
            test = [m for m in mails if first <= m.number <= last]
            fresh_start = {"none": BATCHES[0][0], "earlier": first}.get(args.train)
            train_on = [m for m in mails if not first <= m.number <= last
                        and (fresh_start is None or m.number < fresh_start)] + extra
            model = train([(m.terms, m.severity) for m in train_on], [(m.terms, m.role) for m in train_on],
                          c=args.c, terms=args.terms, p1_threshold=args.p1)
            both = Classifier.from_files(paths, learned=model)
            verdicts = [rules.classify(m.facts) for m in test]
            opinions = [model.opinion(tokens for _, _, tokens in Classifier.fields(m.facts)) for m in test]
            combined = [both.classify(m.facts) for m in test]
            sev_fell = [any(h.name == FALLBACK_SEVERITY for h in v.rules) for v in verdicts]
            role_fell = [any(h.name == FALLBACK_ROLE for h in v.rules) for v in verdicts]
            rows = {
                "rules": score(test, [v.severity for v in verdicts], [v.role for v in verdicts]),
                "learned alone": score(test, [o.severity for o in opinions], [o.role for o in opinions]),
                "fallback only": score(test, [o.severity if f else v.severity
                                              for v, o, f in zip(verdicts, opinions, sev_fell, strict=True)],
                                       [o.role if f else v.role
                                        for v, o, f in zip(verdicts, opinions, role_fell, strict=True)]),
                "rules+learned": score(test, [v.severity for v in combined], [v.role for v in combined]),
            }
            sev, role, p1 = README_BEFORE[number - 1]
            print(f"batch {number} ({first}-{last}), trained on {len(train_on)}; README before tuning: "
                  f"{sev:.0f} % / {role:.0f} % / P1 {p1}; rules fell back: severity {sum(sev_fell)}, "
                  f"role {sum(role_fell)}; learned decided {sum(c.rules[0].name == 'learned' for c in combined)}")
            for label, scores in rows.items():
                print(scores.row(label))
                totals.setdefault(label, []).append(scores)
    print("mean of the four batches (P1 counts summed)")
    print(f"{'README rules':<15}{sum(r[0] for r in README_BEFORE) / 4:>6.1f}"
          f"{sum(r[1] for r in README_BEFORE) / 4:>7.1f}   11/52")
    for label, rows_ in totals.items():
        print(mean(rows_).row(label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
