"""Cost of a mail that repeats one sentence full of keywords: 2,000 versus 20,000 repeats.

Why: hostile or broken mail (a loop, a pasted log) can repeat a sentence thousands of
times.  Every occurrence of a keyword is a hit; the keyword condition once compared every
hit with every other one (overlaps, ``except`` phrases), so 2,000 repeats took seconds
and 20,000 minutes.  Linear cost means ten times the repeats is about ten times the time.

    .venv/bin/python bench/repeats.py [--repeats 2000] [--factor 10] [--rounds 3]

Prints the best of ``--rounds`` classifications per size and the ratio (target: about the
factor, i.e. ~10x; quadratic would be ~100x).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier import Classifier, MailFacts  # noqa: E402
from classifier.rules import DEFAULT_RULES  # noqa: E402

SENTENCE = "The drop-down is down and all records were deleted, nobody can log in. "


def best_time(classifier: Classifier, repeats: int, rounds: int) -> float:
    """The fastest of *rounds* classifications of a mail repeating SENTENCE *repeats* times."""
    mail = MailFacts(subject="help", body=SENTENCE * repeats, sender="user@northwind.example",
                     received_at=datetime(2026, 11, 23, 9, tzinfo=UTC))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        classifier.classify(mail)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    classifier = Classifier.from_files([DEFAULT_RULES])
    best_time(classifier, 10, 1)  # caches (word memo, stems) filled outside the measurement
    small = best_time(classifier, args.repeats, args.rounds)
    large = best_time(classifier, args.repeats * args.factor, args.rounds)
    print(f"{args.repeats:>7} repeats: {small:8.3f} s")
    print(f"{args.repeats * args.factor:>7} repeats: {large:8.3f} s")
    print(f"ratio: {large / small:.1f}x for {args.factor}x the repeats (linear ~{args.factor}x)")


if __name__ == "__main__":
    main()
