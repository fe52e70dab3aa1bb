"""Benchmark: how long ``hypercare --help`` and a first command take to start, beside a bare interpreter.

Usage (from the project root):

    .venv/bin/python bench/startup.py [--runs 15] [--baseline DIR]

Each command runs as its own process, interleaved with ``python -c pass`` (the floor no code of ours
can go under), and the median wall time of each is printed with the load average.  Target (issue 17):
``hypercare --help`` under 0.3 s; the ratio to the bare interpreter is the figure that does not
depend on how busy the machine is.  ``--baseline DIR`` adds the same commands of another checkout
(run as ``python DIR/service.py``), interleaved, so before and after come from one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("hypercare")


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
                   env={**os.environ, "HYPERCARE_CONFIG": ""})
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--baseline", default="", metavar="DIR", help="another checkout, interleaved")
    args = parser.parse_args()
    cli = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, str(ROOT / "service.py")]
    with tempfile.TemporaryDirectory(prefix="hc-start-") as tmp:
        cwd = Path(tmp)
        subprocess.run([*cli, "db", "upgrade"], cwd=cwd, check=True, capture_output=True)  # a current schema
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "hypercare --help": [*cli, "--help"],
            "hypercare tickets (current schema)": [*cli, "tickets"],
        }
        if args.baseline:
            old = [sys.executable, str(Path(args.baseline).resolve() / "service.py")]
            commands["baseline --help"] = [*old, "--help"]
            commands["baseline tickets"] = [*old, "tickets"]
        times: dict[str, list[float]] = {name: [] for name in commands}
        print(f"before: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(timed(command, cwd))
    floor = statistics.median(times["python -c pass"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:36s} median {median * 1000:6.0f} ms  min {min(values) * 1000:6.0f} ms  "
              f"= {median / floor:4.1f}x the bare interpreter")
    print(f"after: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
