"""Same verdicts from two trees: dump every verdict of one tree, then compare another tree's against it.

Why: a speed change to the classifier's rules path must not change a single verdict (severity, role,
rules fired, evidence strings, notes, triage, tags, uncertain), nor the words the learned weights read.
The dump is the ``repr`` of each ``Verdict`` (every field, nested) and of ``Classifier.fields`` per mail,
for the built-in rules alone, with the built-in learned weights, and for the benchmark's 1,000-rule set
(generated prefixes, word forms, regexes and sender rules), over the labelled and holdout sets, the
shared corpus (read in place), the hostile mails that reach the classifier, and synthetic edge cases.

    .venv/bin/python bench/classify_same.py dump /tmp/main-verdicts.txt --tree /work/main
    .venv/bin/python bench/classify_same.py compare /tmp/main-verdicts.txt

``--tree``: the source tree to import the classifier from (default: this one).  Never reads the blind sets.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path("/work/shared/corpus")
SUFFIXES = {".eml", ".txt", ".raw", ".msg", ""}
MAX_FILE_BYTES = 2_000_000


def mails() -> Iterator[tuple[str, object]]:
    """(name, MailFacts) of every mail compared, in a fixed order."""
    from classifier import MailFacts
    from classifier.mailfile import UnreadableMail, facts_from_bytes

    when = datetime(2026, 11, 23, 9, tzinfo=UTC)
    folders = [ROOT / "tests" / "data" / "labelled", ROOT / "tests" / "data" / "holdout"]
    for folder in folders:
        for path in sorted(folder.glob("*.eml")):
            yield f"{folder.name}/{path.name}", facts_from_bytes(path.read_bytes(), when)
    if CORPUS.is_dir():
        for path in sorted(p for p in CORPUS.rglob("*") if p.is_file()):
            if path.suffix.lower() not in SUFFIXES or path.stat().st_size > MAX_FILE_BYTES:
                continue
            try:
                facts = facts_from_bytes(path.read_bytes(), when)
            except UnreadableMail:
                continue
            yield f"corpus/{path.relative_to(CORPUS)}", facts
    sys.path.insert(0, str(ROOT / "tests"))
    import hostile_mails

    for name in ("invalid_utf8_headers", "nul_bytes", "long_display_name", "encoded_word_subject",
                 "punycode_body", "long_subject", "long_word_bounce"):
        yield f"hostile/{name}", facts_from_bytes(getattr(hostile_mails, name)(), when)
    edge = {
        "empty": ("", ""),
        "nul": ("crm down\x00", "nothing \x00works, cannot log\x00 in"),
        "surrogate": ("urgent \udcff", "the crm is down \ud800 for everyone"),
        "combining": ("Gelo\u0308scht", "Daten gelo\u0308scht, l\u2019interface ne re\u0301pond plus"),
        "repeat": ("outage", "The CRM is down for everyone. " * 3000),
        "except": ("", "not a drop-down issue, the drop-down is down, nobody can log in; " * 500),
        "wrap": ("", "I can't\nlog in\nNo rush\nThe CRM is down\n- nobody can work\n> quoted down"),
        "long-word": ("x" * 5000, "a" * 200_000 + " down"),
        "digits": ("ORA-12345 ORA-00001", "error 500 on /api/v2, ORA-04031 " * 50),
    }
    base = datetime(2026, 11, 21, 3, tzinfo=UTC)
    for i, (name, (subject, body)) in enumerate(edge.items()):
        yield f"edge/{name}", MailFacts(subject, body, f"boss@vip{i * 50 + 10}.example",
                                        ("team@example.com",), {"importance": "high"}, ("image/png",),
                                        base + timedelta(hours=13 * i))


def classifiers(folder: Path) -> list[tuple[str, object]]:
    """The three classifiers compared: built-in rules alone, with learned weights, 1,000 rules."""
    sys.path.insert(0, str(ROOT / "bench"))
    import classify as bench

    from classifier import Classifier
    from classifier.learned import BUILTIN_WEIGHTS, LearnedModel
    from classifier.rules import DEFAULT_RULES

    learned = LearnedModel.load(BUILTIN_WEIGHTS)
    return [
        ("alone", Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin")),
        ("learned", Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin", learned=learned)),
        ("1000", Classifier.from_files([bench.rule_file(1000, folder)], timezone="Europe/Berlin")),
    ]


def lines() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        chosen = classifiers(Path(tmp))
        for name, facts in mails():
            first = chosen[0][1]
            yield f"{name} fields {first.fields(facts)!r}"  # type: ignore[attr-defined]
            for label, classifier in chosen:
                yield f"{name} {label} {classifier.classify(facts)!r}"  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("dump", "compare"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--tree", type=Path, default=ROOT, help="source tree to import the classifier from")
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    import classifier

    print(f"classifier from {Path(classifier.__file__).parent}", file=sys.stderr)
    if args.action == "dump":
        with args.file.open("w", encoding="utf-8", errors="surrogateescape") as out:
            count = sum(out.write(line + "\n") > 0 for line in lines())
        print(f"{count} lines written to {args.file}")
        return
    with args.file.open(encoding="utf-8", errors="surrogateescape") as handle:
        expected = handle.read().splitlines()
    got = list(lines())
    differ = [(i, a, b) for i, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b]
    for i, a, b in differ[:5]:
        print(f"line {i}:\n  expected {a[:400]}\n  got      {b[:400]}")
    print(f"{len(got)} lines compared with {len(expected)}: {len(differ)} differ")
    sys.exit(1 if differ or len(got) != len(expected) else 0)


if __name__ == "__main__":
    main()
