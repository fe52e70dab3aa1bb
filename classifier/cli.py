"""CLI: ``hypercare classify`` and ``hypercare rules check|eval|suggest|replay``.

Why these live with the classifier: they are the admin's tools to prove a rule file
before it goes live, and they must classify exactly as ingest does.  The service's
CLI only calls ``register``; each handler gets the composition root (``app``: config,
clock, out, store, classifier) and returns the exit code: 0 done, 2 a mistake the user
can fix, reported as one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from classifier.engine import Classifier, rule_paths
from classifier.evaluation import (
    EvalError,
    evaluate,
    format_overrides,
    format_replay,
    format_report,
    override_confusion,
    override_stats,
    replay,
)
from classifier.fitting import EXPORT_TERMS
from classifier.learned import MAX_TERMS
from classifier.mailfile import UnreadableMail, facts_from_bytes
from classifier.rules import RuleFileError
from classifier.suggest import count_corrections, format_suggestions, suggest


def register(subparsers: Any, common: Any) -> None:
    """Add ``classify`` and ``rules`` to the CLI's subparsers (*common*: --config/--now/-v parent)."""
    parents = [common]
    classify = subparsers.add_parser(
        "classify", parents=parents, help="dry run: severity, role and the rules that fired for .eml files",
        description="Classify mail files without storing anything. Directories are read for *.eml.",
    )
    classify.add_argument("files", nargs="+", metavar="FILE", help=".eml file or folder of .eml files")
    classify.add_argument("--json", action="store_true", help="one JSON object per file")
    classify.set_defaults(handler=cmd_classify)

    rules = subparsers.add_parser("rules", parents=parents, help="check, evaluate and replay classifier rules",
                                  description="Prove a rule file before it goes live.")
    sub = rules.add_subparsers(dest="rules_command", metavar="{check,eval,suggest,replay,train}")
    sub.required = True
    check = sub.add_parser("check", parents=parents, help="validate a rule file (default: the rules in force)")
    check.add_argument("file", nargs="?", help="candidate rule file (combined with [rules] mode)")
    check.set_defaults(handler=cmd_check)
    ev = sub.add_parser("eval", parents=parents, help="score the rules on a labelled folder; --overrides: team changes",
                        description="DIR holds .eml files and labels.csv (file,severity,role).")
    ev.add_argument("dir", nargs="?", help="folder of .eml files with labels.csv")
    ev.add_argument("--overrides", action="store_true", help="how often the team overrode each rule")
    ev.add_argument("--rules", metavar="FILE", help="evaluate this candidate rule file instead")
    ev.set_defaults(handler=cmd_eval)
    sg = sub.add_parser("suggest", parents=parents, help="propose rule edits from the team's #severity/#assign",
                        description="Print [[rule]] tables learnt from team corrections, for a person to review "
                                    "and paste into the site rules file.")
    sg.add_argument("--min-support", type=int, default=2, metavar="N",
                    help="a suggestion needs the same change on at least N tickets (default 2)")
    sg.set_defaults(handler=cmd_suggest)
    rp = sub.add_parser("replay", parents=parents, help="re-classify stored tickets and list what would change")
    rp.add_argument("--since", metavar="DATE", help="only tickets created on or after DATE (2026-11-23)")
    rp.add_argument("--rules", metavar="FILE", help="candidate rule file (default: the rules in force)")
    rp.set_defaults(handler=cmd_replay)
    tr = sub.add_parser("train", parents=parents, help="learn term weights from labelled folders and team corrections",
                        description="Fit the learned weights (classifier/learned.py) on labelled folders (.eml files "
                                    "with labels.csv) and the team's #severity/#assign corrections; needs the "
                                    "optional extra [train] (scikit-learn). Point [rules] learned at the result.")
    tr.add_argument("dirs", nargs="*", metavar="DIR", help="folder of .eml files with labels.csv")
    tr.add_argument("--out", metavar="FILE", default="learned_weights.json",
                    help="weights file to write (default: learned_weights.json)")
    tr.add_argument("--no-corrections", action="store_true", help="do not read the team's corrections")
    tr.add_argument("--terms", type=int, default=EXPORT_TERMS, metavar="N",
                    help=f"vocabulary: the terms in most mails (default {EXPORT_TERMS})")
    tr.set_defaults(handler=cmd_train)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def _classifier(app: Any, candidate: str | None) -> Classifier:
    if candidate is None:
        return app.classifier  # type: ignore[no-any-return]
    return Classifier.from_config(app.config, Path(candidate))


def _mail_files(arguments: list[str]) -> list[Path]:
    files: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() == ".eml" and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{argument}: no such file or folder")
    return files


def cmd_classify(app: Any, args: argparse.Namespace) -> int:
    try:
        files = _mail_files(args.files)
    except FileNotFoundError as exc:
        return _fail(str(exc))
    status = 0
    limit = app.config.intake.max_attachment_bytes
    for path in files:
        try:
            facts = facts_from_bytes(path.read_bytes(), app.clock.now(), limit)
        except (UnreadableMail, OSError) as exc:
            print(f"{path}: cannot read mail ({exc})", file=sys.stderr)
            status = 2
            continue
        verdict = app.classifier.classify(facts)
        if args.json:
            print(json.dumps({"file": str(path), "severity": verdict.severity, "role": verdict.role,
                              "rules": verdict.to_json(), "tags": list(verdict.tags),
                              "fallback": verdict.fallback, "uncertain": verdict.uncertain,
                              "triage": verdict.triage.to_json()}, ensure_ascii=False), file=app.out)
            continue
        print(f"{path}: {verdict.severity} {verdict.role}" + (" (fallback)" if verdict.fallback else "")
              + (" (uncertain)" if verdict.uncertain else ""), file=app.out)
        for line in verdict.triage.lines():
            print(f"  {line}", file=app.out)
        for hit in verdict.rules:
            effect = ", ".join(x for x in (hit.severity, hit.role) if x)
            words = "; ".join(hit.evidence)
            print(f"  {hit.name}" + (f" ({effect})" if effect else "") + (f": {words}" if words else ""),
                  file=app.out)
        if verdict.tags:
            print(f"  tags: {', '.join(verdict.tags)}", file=app.out)
    return status


def cmd_check(app: Any, args: argparse.Namespace) -> int:
    try:
        classifier = Classifier.from_config(app.config, Path(args.file) if args.file else None)
    except RuleFileError as exc:
        return _fail(str(exc))
    rules = classifier.rules
    by_severity = Counter(r.severity or f"hit {r.hit}" for r in rules if r.severity or r.hit)
    limits = sum(1 for r in rules if r.severity_floor or r.severity_ceiling)
    scopes = sum(1 for r in rules if r.scope and not r.hit)
    roles = sum(1 for r in rules if r.role and not (r.severity or r.hit))
    tags = sum(1 for r in rules if not (r.severity_effect or r.role or r.hit or r.scope))
    sources = " + ".join(str(p) for p in rule_paths(app.config, Path(args.file) if args.file else None))
    parts = [f"{s}: {by_severity[s]}" for s in sorted(by_severity)]
    print(f"ok: {sources}: {len(rules)} rules ({', '.join(parts)}, scope: {scopes}, floors/ceilings: {limits}, "
          f"role-only: {roles}, tags-only: {tags}); {len(classifier.ruleset.builder.matcher)} keywords, "
          f"{len(classifier.ruleset.builder.regexes)} regexes; matrix of {len(classifier.ruleset.matrix.rows)} hits",
          file=app.out)
    return 0


def cmd_eval(app: Any, args: argparse.Namespace) -> int:
    if not args.dir and not args.overrides:
        return _fail("rules eval: give a folder of labelled mail (DIR) or --overrides")
    if args.dir:
        try:
            classifier = _classifier(app, args.rules)
            report = evaluate(classifier, Path(args.dir), app.clock.now(), app.config.intake.max_attachment_bytes)
        except (RuleFileError, EvalError) as exc:
            return _fail(str(exc))
        print(format_report(report), file=app.out)
    if args.overrides:
        with app.store.session() as session:
            total, overridden, rows = override_stats(session)
            confusion = override_confusion(session)
        if args.dir:
            print("", file=app.out)
        print(format_overrides(total, overridden, rows, confusion), file=app.out)
    return 0


def cmd_suggest(app: Any, args: argparse.Namespace) -> int:
    if args.min_support < 1:
        return _fail(f"--min-support {args.min_support}: give a number of tickets, 1 or more")
    with app.store.session() as session:
        found = suggest(session, app.classifier, args.min_support)
        kept = count_corrections(session)
    print(format_suggestions(found, kept), file=app.out)
    return 0


def cmd_replay(app: Any, args: argparse.Namespace) -> int:
    since: datetime | None = None
    if args.since:
        try:
            day = datetime.fromisoformat(args.since)
        except ValueError:
            return _fail(f"--since {args.since!r}: expected a date like 2026-11-23")
        since = day if day.tzinfo else day.replace(tzinfo=app.config.hypercare.tz)
    try:
        classifier = _classifier(app, args.rules)
    except RuleFileError as exc:
        return _fail(str(exc))
    with app.store.session() as session:
        rows, problems = replay(session, classifier, since, app.config.intake.max_attachment_bytes)
    print(format_replay(rows, problems), file=app.out)
    return 0


def cmd_train(app: Any, args: argparse.Namespace) -> int:
    from classifier.training import TrainingSet, examples_from_corrections, examples_from_folder, fit_and_write

    if not 1 <= args.terms <= MAX_TERMS:
        return _fail(f"--terms {args.terms}: give a number from 1 to {MAX_TERMS}")
    examples = TrainingSet()
    try:
        for folder in args.dirs:
            examples_from_folder(Path(folder), app.clock.now(), app.config.intake.max_attachment_bytes, examples)
        if not args.no_corrections:
            with app.store.session() as session:
                examples_from_corrections(session, examples)
        print(fit_and_write(examples, Path(args.out), args.terms), file=app.out)
    except (EvalError, RuleFileError) as exc:
        return _fail(str(exc))
    return 0
