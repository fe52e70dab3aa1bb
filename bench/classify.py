"""Classifier throughput for rule sets of 10, 100 and 1,000 rules on realistic mail.

Why: the matcher is compiled once (one word trie, one combined regex), so the cost of a
mail should grow with its length, not with the number of rules.  This prints messages
per second per rule-set size and the 1,000-to-10 cost ratio (target: at most 3x, and
5,000 msgs/s or more on one core for typical mail).

    .venv/bin/python bench/classify.py [--seconds 2] [--sizes 10,100,1000] [--cpu] [--mails 1000]

``--cpu`` counts the process's CPU time (``time.process_time``) instead of wall time: on a
machine shared with other work the wall-clock rate follows the load, the CPU rate hardly does.

Mail: the labelled go-live set (tests/data/labelled), parsed once.  Rule sets: the
built-in rules cut to N, or the built-in rules plus generated rules up to N (five
two-word phrases each from a CRM vocabulary; every 25th also has a regex, every 50th
is a sender rule, which is checked on every mail).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier import Classifier, MailFacts  # noqa: E402
from classifier.learned import BUILTIN_WEIGHTS, LearnedModel  # noqa: E402
from classifier.mailfile import facts_from_bytes  # noqa: E402
from classifier.rules import DEFAULT_RULES  # noqa: E402

VOCABULARY = """account contact lead opportunity quote order invoice case report dashboard field layout
picklist territory forecast campaign product price discount approval workflow queue email template
calendar meeting task activity note attachment import export sync integration interface api webhook
login password user role permission profile licence mobile app outlook search filter view column
stage pipeline renewal contract partner portal survey knowledge article entitlement milestone asset
warranty shipment delivery warehouse payment credit refund return customer vendor region team manager
sales service marketing finance legal support agent supervisor record owner status priority type
north south east west berlin hamburg munich lyon oslo madrid alpha beta gamma delta omega nordic""".split()
ROLES = ("crm_admin", "business_analyst", "technical_consultant", "project_manager")
SEVERITIES = ("P1", "P2", "P3", "P4")


def load_mails() -> list[MailFacts]:
    folder = ROOT / "tests" / "data" / "labelled"
    when = datetime(2026, 11, 23, 9, tzinfo=UTC)
    return [facts_from_bytes(p.read_bytes(), when) for p in sorted(folder.glob("*.eml"))]


def rule_file(size: int, folder: Path) -> Path:
    """A rule file with exactly *size* rules (built-in ones first)."""
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    builtin = tomllib.loads(text)["rule"]
    path = folder / f"rules-{size}.toml"
    if size <= len(builtin):
        head, *blocks = text.split("\n[[rule]]\n")
        keep = blocks[:size]
        path.write_text(head + "".join("\n[[rule]]\n" + b for b in keep), encoding="utf-8")
        return path
    rng = random.Random(size)
    parts = [text]
    for i in range(size - len(builtin)):
        words = [f"{rng.choice(VOCABULARY)} {rng.choice(VOCABULARY)}" for _ in range(5)]
        lines = [
            "", "[[rule]]", f'name = "generated-{i}"', f'description = "generated rule {i}"',
            f'severity = "{rng.choice(SEVERITIES)}"' if i % 3 else f'role = "{rng.choice(ROLES)}"',
        ]
        keywords = "keywords = [" + ", ".join(f'"{w}"' for w in words) + "]"
        if i % 50 == 10:
            lines.append(f'sender = ["@vip{i}.example"]')
        elif i % 25 == 24:
            lines.append(f"any = [{{ {keywords} }}, {{ regex = 'REF-{i}-\\d{{4}}' }}]")
        else:
            lines.append(keywords)
        parts.append("\n".join(lines))
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def measure(classifier: Classifier, mails: list[MailFacts], seconds: float, rounds: int = 5,
            clock: Callable[[], float] = time.perf_counter) -> float:
    """Best of *rounds* passes (messages per second): other load on the machine only ever slows a pass."""
    for facts in mails:  # warm-up
        classifier.classify(facts)
    best = 0.0
    for _ in range(rounds):
        done, start = 0, clock()
        while True:
            for facts in mails:
                classifier.classify(facts)
            done += len(mails)
            elapsed = clock() - start
            if elapsed >= seconds / rounds:
                break
        best = max(best, done / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per rule-set size")
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--cpu", action="store_true", help="rates in CPU time of this process, not wall time")
    parser.add_argument("--mails", type=int, default=0, metavar="N",
                        help="every k-th labelled mail, N in all (default: all; each pass reads them all, so "
                             "with ~5,000 mails a run takes minutes whatever --seconds says)")
    args = parser.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter
    mails = load_mails()
    if 0 < args.mails < len(mails):
        mails = mails[::len(mails) // args.mails][:args.mails]
    # Long mails: ten bodies in one, like a mail with a pasted log or a long thread summary.
    long_mails = [replace(m, body="\n\n".join(x.body for x in mails[i:i + 10]))
                  for i, m in enumerate(mails[:-10])]
    words = sum(len(m.subject.split()) + len(m.body.split()) for m in mails) / len(mails)
    long_words = sum(len(m.body.split()) for m in long_mails) / len(long_mails)
    print(f"{len(mails)} mails (labelled go-live set), {words:.0f} words on average; long mails "
          f"{long_words:.0f} words; one core, Python {sys.version.split()[0]}; "
          f"{'CPU' if args.cpu else 'wall'} time")
    print(f"{'rules':>6} {'keywords':>9} {'regexes':>8} {'compile ms':>11} {'msgs/s':>9} {'us/msg':>8} "
          f"{'long msgs/s':>12}")
    rates: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            path = rule_file(size, Path(tmp))
            start = time.perf_counter()
            classifier = Classifier.from_files([path], timezone="Europe/Berlin")
            compile_ms = (time.perf_counter() - start) * 1000
            assert len(classifier.rules) == size, (len(classifier.rules), size)
            rate = measure(classifier, mails, args.seconds, clock=clock)
            long_rate = measure(classifier, long_mails, args.seconds / 2, clock=clock)
            rates[size] = rate
            builder = classifier.ruleset.builder
            print(f"{size:>6} {len(builder.matcher):>9} {len(builder.regexes):>8} {compile_ms:>11.1f} "
                  f"{rate:>9.0f} {1e6 / rate:>8.1f} {long_rate:>12.0f}")
    if len(rates) > 1:
        small, large = min(rates), max(rates)
        print(f"cost of {large} rules / cost of {small} rules: {rates[small] / rates[large]:.2f}x")
    compare_learned(mails, long_mails, args.seconds, clock)


def alternate(first: Classifier, second: Classifier, mails: list[MailFacts], seconds: float,
              clock: Callable[[], float]) -> tuple[float, float]:
    """Best rate of each over passes taken in turns (first, second, first, ...) for about *seconds* in all:
    a change of the machine's load during the run hits both alike, so their ratio stays meaningful."""
    for classifier in (first, second):  # warm-up: word caches filled
        for facts in mails:
            classifier.classify(facts)
    best = [0.0, 0.0]
    start = clock()
    while True:
        for i, classifier in enumerate((first, second)):
            begin = clock()
            for facts in mails:
                classifier.classify(facts)
            best[i] = max(best[i], len(mails) / (clock() - begin))
        if clock() - start >= seconds:
            return best[0], best[1]


def compare_learned(mails: list[MailFacts], long_mails: list[MailFacts], seconds: float,
                    clock: Callable[[], float] = time.perf_counter) -> None:
    """The built-in rules alone and with the built-in learned weights (classifier/learned.py), same run.

    The two are measured in turns (``alternate``); long mails: the first 200.
    """
    alone = Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin")
    start = time.perf_counter()
    learned = LearnedModel.load(BUILTIN_WEIGHTS)
    load_ms = (time.perf_counter() - start) * 1000
    both = Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin", learned=learned)
    rate_alone, rate_both = alternate(alone, both, mails, seconds, clock)
    long_alone, long_both = alternate(alone, both, long_mails[:200], seconds / 2, clock)
    print(f"built-in rules alone: {rate_alone:.0f} msgs/s (long {long_alone:.0f}); with learned weights "
          f"({len(learned.severity.weights)}+{len(learned.role.weights)} terms, loaded in {load_ms:.0f} ms): "
          f"{rate_both:.0f} msgs/s (long {long_both:.0f}); cost ratio {rate_alone / rate_both:.2f}x")
    if learned.paragraph is not None:  # twelfth round: what reading each paragraph costs
        without = replace(learned, paragraph=None)
        whole = Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin", learned=without)
        rate_whole, rate_paragraphs = alternate(whole, both, mails, seconds, clock)
        print(f"learned weights without the paragraph head: {rate_whole:.0f} msgs/s, with it {rate_paragraphs:.0f}; "
              f"cost ratio {rate_whole / rate_paragraphs:.2f}x")


if __name__ == "__main__":
    main()
