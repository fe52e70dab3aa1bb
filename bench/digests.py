"""Digest render time at N tickets, alone (without the outbox part of ``bench/outbox.py``).

    .venv/bin/python bench/digests.py [--tickets 100000]

Run it in two checkouts back to back (e.g. main and a branch) to get a before/after ratio on the
same machine load; it prints the load average with the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from outbox import bench_digest  # bench/ and the repository on the path first (above)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        timings = bench_digest(Path(tmp), f"sqlite:///{tmp}/digest.db", args.tickets)
    for key, seconds in timings.items():
        print(f"render {key:<15} over {args.tickets} tickets: {seconds * 1000:7.0f} ms (best of 3)")
    print("load average: " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
