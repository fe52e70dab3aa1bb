"""Benchmark: quote trimming (``intake.parse.quotes.trim_reply``) of a long reply, as seconds and ratios.

Usage (from the project root):

    .venv/bin/python bench/quotes.py [--lines 70000]

The reply is *lines* lines of text (a pasted log, ~80 bytes a line) above a quoted mail, the shape
``tests/test_quotes.py`` counts the regex work of.  Printed: the seconds for *lines* and for twice as
many (linear: ~2x), and both against plain passes over the same text in the same run (``str.split``
of the lines, ``str.lower``), since this machine's speed varies 3x with load.  This replaced a timed unit
test (< 3 s for 70,000 lines) that failed under load.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from intake.parse.quotes import trim_reply  # noqa: E402


def long_reply(lines: int) -> str:
    return ("word " * 15 + "\n") * lines + "\nOn Mon, X <x@example.com> wrote:\n> q\n"


def best_of(runs: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=70_000)
    args = parser.parse_args()
    print(f"load {os.getloadavg()}")
    seconds = {}
    for lines in (args.lines, 2 * args.lines):
        text = long_reply(lines)
        assert trim_reply(text).endswith("word")
        seconds[lines] = best_of(3, lambda text=text: trim_reply(text))  # type: ignore[misc]
        split = best_of(3, lambda text=text: text.split("\n"))  # type: ignore[misc]
        lower = best_of(3, lambda text=text: text.lower())  # type: ignore[misc]
        print(f"{lines:>7} lines {len(text) / 1e6:5.1f} MB: trim_reply {seconds[lines]:.3f} s = "
              f"{seconds[lines] / split:.0f}x str.split ({split:.4f} s), {seconds[lines] / lower:.0f}x str.lower "
              f"({lower:.4f} s)")
    print(f"twice the lines: {seconds[2 * args.lines] / seconds[args.lines]:.2f}x the time (linear: ~2x); "
          f"load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
