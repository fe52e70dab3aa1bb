"""Leave one AUTHOR out: the classifier as integrated (rules + learned weights), scored on authors it never saw.

Why this script: a blind set can be scored once; choosing the combination's parameters needs a proxy
for mail from unknown writers that may be used as often as needed.  Each group of the tuning set is
written by one author (or, for the oldest mails, a mix of authors); for every group the weights are
trained on all *other* groups, and that group is scored with the full classifier, the built-in rules
plus ``classifier.combination.combine``.  The mean over groups is the estimate; the parameters of
``Policy`` are chosen on it (classifier/README.md, "Measured: leave one author out").

    .venv/bin/pip install scikit-learn      # offline only; the desk does not need it
    .venv/bin/python bench/classifier_cv.py [--grid] [--c 10] [--terms 10000] [--groups A,B,...]
    .venv/bin/python bench/classifier_cv.py --cache DIR --save-verdicts base.json    # before a rule edit
    .venv/bin/python bench/classifier_cv.py --cache DIR --compare-verdicts base.json # after: what it moved

Groups: ``old`` = labelled 1-329 and the held-out set (several authors), ``b1-4`` = 330-529 (one
author), ``A``..``H`` = ``NNN-tX-*.eml`` (one author each).  The built-in rules were tuned on ``old``
and ``b1-4`` (and on any batch a rule was later written from: see the README), so those groups' figures
flatter the rules; ``new`` is the mean of the author groups the rules were not tuned on.

Columns: severity %, role %, P1 recall, P1 precision (counts summed over groups), share of mails no
severity rule matched ("no rule"), share with no evidence at all (no rule and no learned evidence),
P4 mails classified P1/P2.  Rows: the rules alone, the learned weights alone, and the combination
as integrated (``Policy`` defaults); ``--grid`` adds a search over the policy's parameters.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier import Classifier, MailFacts  # noqa: E402
from classifier.combination import DEFAULT_POLICY, Policy, combine  # noqa: E402
from classifier.evaluation import no_evidence, read_labels  # noqa: E402
from classifier.fitting import DEFAULT_C, EXPORT_TERMS, MAX_SHARE, PARAGRAPH_ROUNDS, train  # noqa: E402
from classifier.learned import LearnedModel, Opinion, term_counts, write  # noqa: E402
from classifier.mailfile import facts_from_bytes  # noqa: E402
from classifier.paragraphs import MIN_WORDS, paragraphs  # noqa: E402
from classifier.rules import DEFAULT_RULES  # noqa: E402
from classifier.verdict import FALLBACK_SEVERITY, Verdict  # noqa: E402

WHEN = datetime(2026, 11, 30, 8, tzinfo=UTC)
_AUTHOR = re.compile(r"^\d+-t([A-Z]\d?)-")
RULES_TUNED_ON = ("old", "b1-4")  # groups the built-in rules were written from
_READING = "subject and a one-paragraph body always"  # how classifier.paragraphs reads a mail: part of the cache key


@dataclass
class Mail:
    name: str
    group: str
    severity: str
    role: str
    facts: MailFacts
    tokens: list[list[str]]
    terms: dict[str, int]
    paragraphs: list[Sequence[str]]  # the paragraphs' words (classifier.paragraphs)
    paragraph_terms: list[dict[str, int]]


def group_of(name: str, folder: str) -> str:
    found = _AUTHOR.match(name)
    if found:
        return found.group(1)
    number = int(name.split("-", 1)[0]) if folder == "labelled" else 0
    return "b1-4" if 330 <= number <= 529 else "old"


def load(folders: Iterable[Path]) -> list[Mail]:
    mails = []
    for folder in folders:
        for name, severity, role in read_labels(folder):
            facts = facts_from_bytes((folder / name).read_bytes(), WHEN)
            fields = Classifier.fields(facts)
            tokens = [t for _, _, t in fields]
            parts = paragraphs(fields)
            mails.append(Mail(name, group_of(name, folder.name), severity, role, facts, tokens, term_counts(tokens),
                              parts, [term_counts((words,)) for words in parts]))
    return mails


@dataclass
class Scores:
    n: int = 0
    severity: int = 0
    role: int = 0
    p1_found: int = 0
    p1_total: int = 0
    p1_said: int = 0
    no_rule: int = 0
    no_evidence: int = 0
    p4_high: int = 0

    def add(self, mail: Mail, severity: str, role: str, no_rule: bool, no_evidence: bool) -> None:
        self.n += 1
        self.severity += severity == mail.severity
        self.role += role == mail.role
        self.p1_found += mail.severity == "P1" and severity == "P1"
        self.p1_total += mail.severity == "P1"
        self.p1_said += severity == "P1"
        self.no_rule += no_rule
        self.no_evidence += no_evidence
        self.p4_high += mail.severity == "P4" and severity in ("P1", "P2")


@dataclass
class Summary:
    severity: float
    role: float
    p1_found: int
    p1_total: int
    p1_said: int
    no_rule: float
    no_evidence: float
    p4_high: int

    @classmethod
    def of(cls, rows: list[Scores]) -> Summary:
        k = len(rows)
        return cls(sum(100 * r.severity / r.n for r in rows) / k, sum(100 * r.role / r.n for r in rows) / k,
                   sum(r.p1_found for r in rows), sum(r.p1_total for r in rows), sum(r.p1_said for r in rows),
                   sum(100 * r.no_rule / r.n for r in rows) / k, sum(100 * r.no_evidence / r.n for r in rows) / k,
                   sum(r.p4_high for r in rows))

    @property
    def recall(self) -> float:
        return 100 * self.p1_found / self.p1_total if self.p1_total else 0.0

    @property
    def precision(self) -> float:
        return 100 * self.p1_found / self.p1_said if self.p1_said else 0.0

    def row(self, label: str) -> str:
        return (f"{label:<34}{self.severity:>6.1f}{self.role:>7.1f}  {self.p1_found:>4}/{self.p1_total:<4}"
                f"{self.recall:>5.1f}  {self.p1_found:>4}/{self.p1_said:<4}{self.precision:>5.1f}"
                f"{self.no_rule:>8.1f}{self.no_evidence:>8.1f}{self.p4_high:>6}")


HEADER = (f"{'':<34}{'sev%':>6}{'role%':>7}  {'P1 recall':>14}  {'P1 precision':>14}{'no rule':>8}"
          f"{'no evid':>8}{'P4>P3':>6}")


def is_no_rule(verdict: Verdict) -> bool:
    return any(h.name == FALLBACK_SEVERITY for h in verdict.rules)


Judge = Callable[[Mail, Verdict, Opinion, LearnedModel], tuple[str, str, bool, bool]]


def as_integrated(policy: Policy) -> Judge:
    def judge(mail: Mail, verdict: Verdict, opinion: Opinion, model: LearnedModel) -> tuple[str, str, bool, bool]:
        final = combine(verdict, opinion, model, policy)
        return final.severity, final.role, is_no_rule(final), no_evidence(final)
    return judge


def rules_alone(mail: Mail, verdict: Verdict, opinion: Opinion, model: LearnedModel) -> tuple[str, str, bool, bool]:
    return verdict.severity, verdict.role, is_no_rule(verdict), is_no_rule(verdict)


def learned_alone(mail: Mail, verdict: Verdict, opinion: Opinion, model: LearnedModel) -> tuple[str, str, bool, bool]:
    return opinion.severity, opinion.role, is_no_rule(verdict), False


@dataclass
class Fold:
    group: str
    mails: list[Mail]
    verdicts: list[Verdict]
    opinions: list[Opinion]
    model: LearnedModel


def folds(mails: list[Mail], groups: list[str], c: float, terms: int, p1: float,
          cache: Path | None = None) -> list[Fold]:
    """Train without each group and score it; *cache*: a folder keeping the trained weights between runs
    (keyed by the training mails' names, labels and words, C and terms: a changed label, or a change in what
    the classifier reads of a mail (ninth round: forwards read whole), retrains)."""
    rules = Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin")
    out = []
    for group in groups:
        test = [m for m in mails if m.group == group]
        rest = [m for m in mails if m.group != group]
        start = time.perf_counter()
        key = hashlib.sha256(repr((sorted((m.name, m.severity, m.role, m.tokens) for m in rest), c, terms,
                                   MAX_SHARE, PARAGRAPH_ROUNDS, MIN_WORDS, _READING)).encode()).hexdigest()
        path = cache / f"cv-{group}-{key[:16]}.json" if cache else None
        if path is not None and path.exists():
            model = LearnedModel.load(path)
        else:
            model = train([(m.terms, m.severity) for m in rest], [(m.terms, m.role) for m in rest], c=c,
                          terms=terms, p1_threshold=p1, source=f"cv-without-{group}",
                          paragraphs=[m.paragraph_terms for m in rest])
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                write(model, path)
        print(f"# group {group}: {len(test)} mails scored, trained on {len(rest)} "
              f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
        out.append(Fold(group, test, [rules.classify(m.facts) for m in test],
                        [model.opinion(m.tokens, m.paragraphs) for m in test], model))
    return out


def score(fold: Fold, judge: Judge) -> Scores:
    scores = Scores()
    for mail, verdict, opinion in zip(fold.mails, fold.verdicts, fold.opinions, strict=True):
        scores.add(mail, *judge(mail, verdict, opinion, fold.model))
    return scores


def summaries(all_folds: list[Fold], judge: Judge) -> tuple[dict[str, Scores], Summary, Summary]:
    per = {f.group: score(f, judge) for f in all_folds}
    new = [s for g, s in per.items() if g not in RULES_TUNED_ON] or list(per.values())
    return per, Summary.of(new), Summary.of(list(per.values()))


def check_integration(all_folds: list[Fold]) -> None:
    """The judge ``as_integrated`` is what ``Classifier.classify`` does with the same weights."""
    fold = all_folds[0]
    both = Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin", learned=fold.model)
    for mail, verdict, opinion in list(zip(fold.mails, fold.verdicts, fold.opinions, strict=True))[:40]:
        direct = both.classify(mail.facts)
        via = combine(verdict, opinion, fold.model)
        assert (direct.severity, direct.role) == (via.severity, via.role), mail.name


GRID = {
    "p1_unsure": (0.3, 0.4, 0.5, 0.6),
    "p1_sure": (0.4, 0.5, 0.6, 0.8),
    "severity_sure": (0.0, 0.4, 0.5, 0.6, 0.7),
    "role_sure": (0.0, 0.3, 0.4, 0.5, 0.6),
    "min_margin": (0.0, 0.05, 0.1, 0.2),
    "role_margin": (0.0, 0.1, 0.2),
    "guard_p4": (False, True),
    "lower_p1": (0.1, 0.2, 0.3, 0.4),
    "lower_p1_sure": (0.0, 0.05, 0.1, 0.15, 0.2),
    "confirm": (0.5, 0.6, 0.7),
    "p1_doubt": (0.1, 0.2),
    "p1_over_ceiling": (0.6, 0.8, 0.9, 1.01),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--c", type=float, default=DEFAULT_C, help="inverse regularisation of the logistic regression")
    parser.add_argument("--terms", type=int, default=EXPORT_TERMS, help="vocabulary size (as trained)")
    parser.add_argument("--groups", default="", help="comma-separated groups to hold out (default: all)")
    parser.add_argument("--grid", action="store_true", help="search the Policy parameters (one at a time, then "
                        "the best pairs)")
    parser.add_argument("--cache", type=Path, help="folder keeping the trained weights between runs")
    parser.add_argument("--per-group", action="store_true", help="print every group's row for the integrated policy")
    parser.add_argument("--uncertain", action="store_true", help="how right the certain and the uncertain "
                        "verdicts are (new groups), as integrated and by the rules' doubts alone")
    parser.add_argument("--save-verdicts", type=Path, metavar="FILE", help="write each mail's integrated verdict "
                        "(severity, role) as JSON, the baseline for --compare-verdicts")
    parser.add_argument("--compare-verdicts", type=Path, metavar="FILE", help="list each mail whose integrated "
                        "verdict differs from FILE's: + now right, - now wrong, ~ wrong either way")
    parser.add_argument("--p1-errors", action="store_true", help="list each missed and each false P1 as "
                        "integrated, with the rule that decided (tuning groups only: never run it on a blind set)")
    args = parser.parse_args()
    mails = load([ROOT / "tests" / "data" / "labelled", ROOT / "tests" / "data" / "holdout"])
    groups = sorted({m.group for m in mails}, key=lambda g: (len(g) == 1, g))
    if args.groups:
        groups = [g for g in groups if g in args.groups.split(",")]
    print(f"{len(mails)} mails; groups: " + ", ".join(f"{g} ({sum(m.group == g for m in mails)})" for g in groups)
          + f"; C={args.c}, {args.terms} terms per head")
    all_folds = folds(mails, groups, args.c, args.terms, DEFAULT_POLICY.p1_unsure or 0.5, args.cache)
    check_integration(all_folds)
    print("mean over groups; 'new' = author groups the rules were not written from "
          f"(all but {', '.join(RULES_TUNED_ON)}); P1 counts summed")
    print(HEADER)
    for label, judge in (("rules alone", rules_alone), ("learned alone", learned_alone),
                         ("rules + learned (as integrated)", as_integrated(DEFAULT_POLICY))):
        per, new, everything = summaries(all_folds, judge)
        print(new.row(f"new: {label}"))
        print(everything.row(f"all: {label}"))
        if args.per_group and label.startswith("rules + learned"):
            for group, scores in per.items():
                print(Summary.of([scores]).row(f"  group {group} ({scores.n})"))
    verdicts = integrated_verdicts(all_folds) if args.compare_verdicts or args.save_verdicts else {}
    if args.compare_verdicts:
        before = {name: tuple(v) for name, v in json.loads(args.compare_verdicts.read_text()).items()}
        print(f"\nverdicts changed since {args.compare_verdicts} (label: severity/role)")
        print("\n".join(verdict_changes(before, verdicts, {m.name: (m.severity, m.role) for m in mails})) or "  none")
    if args.save_verdicts:
        args.save_verdicts.write_text(json.dumps(verdicts, indent=0, sort_keys=True))
    if args.p1_errors:
        p1_errors(all_folds)
    if args.uncertain:
        uncertain_table([f for f in all_folds if f.group not in RULES_TUNED_ON] or all_folds)
    if args.grid:
        grid_search(all_folds)
    return 0


def integrated_verdicts(all_folds: list[Fold]) -> dict[str, tuple[str, str]]:
    """Mail name -> (severity, role) as integrated, each mail scored by the fold that held it out."""
    out = {}
    for fold in all_folds:
        for mail, verdict, opinion in zip(fold.mails, fold.verdicts, fold.opinions, strict=True):
            final = combine(verdict, opinion, fold.model)
            out[mail.name] = (final.severity, final.role)
    return out


def verdict_changes(before: dict[str, tuple[str, ...]], after: dict[str, tuple[str, str]],
                    labels: dict[str, tuple[str, str]]) -> list[str]:
    """One line per mail whose verdict moved: ``+`` now right, ``-`` now wrong, ``~`` wrong before and after.

    Why: a rule edit is judged by the mails it moves, not by the totals alone (a +3 can be +5 and -2); with
    ``--cache`` the folds' weights are reused, so a rerun after an edit takes the scoring time only.  Mails
    only in one of the two runs (a batch added since) are left out.
    """
    lines = []
    for name in sorted(set(before) & set(after)):
        was, now, label = tuple(before[name]), after[name], labels[name]
        if was == now:
            continue
        mark = "+" if now == label else "-" if was == label else "~"
        lines.append(f"  {mark} {name}  label {'/'.join(label)}  was {'/'.join(was)}  now {'/'.join(now)}")
    return lines


def p1_errors(all_folds: list[Fold]) -> None:
    """Every P1 the integrated classifier missed or gave wrongly, by the hit and scope that decided.

    Why: the rules alone show false P1s the weights already take back; what is worth a rule is what is
    still wrong after the weights, on authors they were not trained on.
    """
    print("\nP1 errors as integrated (label -> verdict (the rules' own); the hit rule / the scope rule that decided)")
    for fold in all_folds:
        for mail, verdict, opinion in zip(fold.mails, fold.verdicts, fold.opinions, strict=True):
            final = combine(verdict, opinion, fold.model)
            if (mail.severity == "P1") == (final.severity == "P1"):
                continue
            triage = final.triage
            decided = f"{triage.hit.rule if triage.hit else '-'} / {triage.scope.rule or '-'}"
            print(f"  {fold.group:5s} {mail.severity} -> {final.severity} ({verdict.severity})  {decided:45s} "
                  f"{mail.name}")


def uncertain_table(some_folds: list[Fold]) -> None:
    """Is ``uncertain`` a signal? Share and accuracy of each side, and how many P1 errors it marks."""
    rows = [(mail, verdict, combine(verdict, opinion, fold.model))
            for fold in some_folds for mail, verdict, opinion in zip(fold.mails, fold.verdicts, fold.opinions,
                                                                     strict=True)]
    print("\nuncertain (new groups, pooled)           verdicts        severity  owner  missed P1 / false P1 marked")
    for label, marked in (("the rules' doubts (rules' verdict)", lambda v, final: v.uncertain),
                          ("as integrated (the weights decide)", lambda v, final: final.uncertain)):
        missed = [marked(v, f) for m, v, f in rows if m.severity == "P1" and f.severity != "P1"]
        false = [marked(v, f) for m, v, f in rows if m.severity != "P1" and f.severity == "P1"]
        for side in (False, True):
            part = [(m, f) for m, v, f in rows if marked(v, f) == side]
            n = len(part) or 1
            share = 100 * len(part) / len(rows)
            print(f"{label:40s} {'uncertain' if side else 'certain  '} {len(part):5d} ({share:4.1f} %)"
                  f"  {100 * sum(f.severity == m.severity for m, f in part) / n:5.1f} %"
                  f"  {100 * sum(f.role == m.role for m, f in part) / n:5.1f} %"
                  + (f"  {sum(missed)}/{len(missed)} / {sum(false)}/{len(false)}" if side else ""))


def grid_search(all_folds: list[Fold]) -> None:
    """One parameter at a time from the defaults, then every combination of the two best values of each."""
    print("\ngrid (mean of the 'new' groups; one parameter changed from the integrated defaults)")
    print(HEADER)
    best: dict[str, list[object]] = {}
    for name, values in GRID.items():
        ranked = []
        for value in values:
            policy = replace(DEFAULT_POLICY, **{name: value})
            _, new, _ = summaries(all_folds, as_integrated(policy))
            print(new.row(f"{name}={value}"))
            ranked.append((objective(new), value))
        best[name] = [v for _, v in sorted(ranked, key=lambda x: -x[0])[:2]]
    print("\nbest pairs combined (top 15 by severity + role with P1 recall >= 95 %, then precision)")
    print(HEADER)
    results = []
    names = [f.name for f in fields(Policy)]
    for combo in itertools.product(*(best.get(n, [getattr(DEFAULT_POLICY, n)]) for n in names)):
        policy = Policy(**dict(zip(names, combo, strict=True)))
        _, new, everything = summaries(all_folds, as_integrated(policy))
        results.append((objective(new), policy, new, everything))
    for _, policy, new, everything in sorted(results, key=lambda x: -x[0])[:15]:
        changed = ", ".join(f"{n}={getattr(policy, n)}" for n in names
                            if getattr(policy, n) != getattr(DEFAULT_POLICY, n))
        print(new.row(f"new: {changed or 'defaults'}"[:34]))
        print(everything.row("  all"))
        print(f"  ({changed or 'defaults'})")


def objective(s: Summary) -> float:
    """Severity and role accuracy, a false page and a P4 raised cost, a missed P1 costs more."""
    missed = s.p1_total - s.p1_found
    false_pages = s.p1_said - s.p1_found
    return s.severity + s.role - 0.5 * missed - 0.2 * false_pages - 0.5 * s.p4_high


if __name__ == "__main__":
    sys.exit(main())
