"""Benchmark: a storm of one problem against as many unrelated new tickets, ``hypercare poll --once``.

Usage (from the project root, Dovecot installed):

    .venv/bin/python bench/storm.py [--sizes 200,2000] [--rounds 1] [--backends sqlite,postgresql]

For each size N it fills a private Dovecot (tests/dovecot.py) with N reports of one outage (eight
phrasings in three languages, one reporter each: every report after the first joins one incident) and
runs ``hypercare poll --once`` with ``[incidents]`` on, on a fresh database; then the same with N
unrelated new requests (each its own problem: words no other mail shares; the same classifier rule, so they
too are judged one by one). It prints msg/s for both (after the start-up: the same command's time on an
empty mailbox of the same migrated database is subtracted),
the storm's rate as a share of the unrelated rate (target: >= 50 %) and the storm's rate at the largest
size against the smallest (target: within 20 %: the cost of a report does not grow with the incident).
After each storm it checks the grouping: one incident holding all N reports.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from dovecot import Dovecot  # noqa: E402
from ingest_imap import empty_processed, fresh_postgres, load_average, run_poll, write_config  # noqa: E402
from mailkit import made_up_words  # noqa: E402

STORM = (  # the rehearsal's outage (bench/rehearsal.py STORM), reported over and over
    ("CRM is down", "Nobody can log in since 8:00, the whole sales team is blocked."),
    ("CRM ausgefallen", "Das CRM ist seit 8 Uhr komplett ausgefallen, wir bekommen nur eine Fehlerseite."),
    ("CRM en panne", "Le CRM est en panne depuis ce matin, personne ne peut se connecter au CRM."),
    ("CRM down?", "Is the CRM down? I get an error 503 when I open it."),
    ("Kein Zugriff auf das CRM", "Das CRM ist nicht erreichbar, Fehler 503 bei allen Kollegen im Vertrieb."),
    ("Le CRM ne répond plus", "Le CRM est en panne pour toute l'équipe, erreur 503 à l'ouverture."),
    ("Outage: CRM not loading", "The CRM is down for our whole team, the page does not load at all."),
    ("CRM Ausfall", "Das CRM ist komplett ausgefallen, niemand im Team kann arbeiten."),
)


def _mail(i: int, subject: str, body: str, kind: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Reporter {i} <{kind}{i}@customer{i % 7}.example>"
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{kind}-{i}@customer{i % 7}.example>"
    msg["Date"] = "Mon, 23 Nov 2026 09:00:00 +0000"
    msg.set_content(f"Hello support,\n\n{body}\n\nRegards\nReporter {i}\n")
    return msg.as_bytes()


def storm_mails(count: int) -> list[bytes]:
    return [_mail(i, *STORM[i % len(STORM)], kind="storm") for i in range(count)]


def unrelated_mails(count: int, seed: int = 17) -> list[bytes]:
    """Each its own problem: a made-up screen and field no other mail names, in the same few sentences."""
    rng = random.Random(seed)
    word = made_up_words(rng)

    mails = []
    for i in range(count):
        screen, field = word(), word()
        mails.append(_mail(i, f"{screen.capitalize()} screen: {field} is empty",
                           f"On the {screen} screen the {field} field stays empty after saving.", kind="other"))
    return mails


def incident_check(database: str, expected: int) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    with engine.connect() as conn:
        incidents = conn.execute(text("SELECT count(*) FROM incidents")).scalar()
        grouped = conn.execute(text("SELECT count(*) FROM tickets WHERE incident_id IS NOT NULL")).scalar()
        tickets = conn.execute(text("SELECT count(*) FROM tickets")).scalar()
    engine.dispose()
    verdict = "ok" if (incidents, grouped, tickets) == (1, expected, expected) else "UNEXPECTED"
    return f"{tickets} tickets, {incidents} incident(s), {grouped} grouped: {verdict}"


def one_run(server: Dovecot, args: argparse.Namespace, backend: str, kind: str, size: int,
            tree: Path = ROOT) -> float:
    """``poll --once`` of *size* mails of *kind* on a fresh, migrated database: msg/s without the start-up
    (the same command's time on an empty mailbox, measured right before on the same database)."""
    workdir = Path(tempfile.mkdtemp(prefix="hc-storm-"))
    drop = None
    try:
        if backend == "sqlite":
            database = f"sqlite:///{workdir / 'bench.db'}"
        else:
            database, drop = fresh_postgres(args.postgres)
        write_config(workdir, database, server.port, flood_limit=1_000_000, incidents="true",
                     batch_size=args.batch_size)
        code, startup, _peak, _output = run_poll(workdir, None, tree)  # migrates the database, then finds nothing
        code, startup, _peak, _output = run_poll(workdir, None, tree)  # the start-up alone
        if code != 0:
            raise SystemExit(f"empty poll failed (exit {code}); see {workdir / 'poll.log'}")
        mails = storm_mails(size) if kind == "storm" else unrelated_mails(size)
        server.deliver(mails)
        del mails
        code, seconds, peak_kib, _output = run_poll(workdir, None, tree)
        left = len(server.uids("INBOX"))
        if code != 0 or left:
            raise SystemExit(f"poll failed (exit {code}, {left} left); see {workdir / 'poll.log'}")
        rate = size / max(seconds - startup, 1e-3)
        check = incident_check(database, size) if kind == "storm" else ""
        label = backend if tree == ROOT else f"{backend}@base"
        print(f"  {label:10s} {kind:9s} {size:6d} mails in {seconds:7.2f}s (start-up {startup:.2f}s) = "
              f"{rate:6.0f} msg/s after start-up ({size / seconds:.0f} with it), peak RSS {peak_kib / 1024:.0f} MB "
              f"{check}; {load_average()}", flush=True)
        return rate
    finally:
        if drop is not None:
            drop()
        empty_processed(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,2000")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--postgres", default=os.environ.get("HYPERCARE_TEST_DATABASE_URL", ""))
    parser.add_argument("--baseline", default="", metavar="DIR",
                        help="another checkout (git archive of the commit before): each run is repeated with its "
                             "poll --once, so before and after share one run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "postgresql" in backends and not args.postgres:
        parser.error("--backends postgresql needs --postgres URL (or HYPERCARE_TEST_DATABASE_URL)")
    print(f"bench/storm.py sizes {sizes}, {args.rounds} round(s), backends {backends}; {load_average()}")
    rates: dict[tuple[str, str, int], list[float]] = {}
    trees = [("", ROOT)] + ([("@base", Path(args.baseline).resolve())] if args.baseline else [])
    server = Dovecot(user="support")
    try:
        server.start()
        for _round in range(args.rounds):
            for backend in backends:
                for size in sizes:
                    for kind in ("unrelated", "storm"):  # interleaved: both see the same load
                        for name, tree in trees:
                            rates.setdefault((backend + name, kind, size), []).append(
                                one_run(server, args, backend, kind, size, tree))
    finally:
        server.cleanup()

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    print(f"summary (median of {args.rounds} round(s)); {load_average()}")
    for backend in [b + name for b in backends for name, _tree in trees]:
        for size in sizes:
            storm, other = median(rates[backend, "storm", size]), median(rates[backend, "unrelated", size])
            print(f"  {backend:10s} {size:6d}: storm {storm:6.0f} msg/s, unrelated {other:6.0f} msg/s, "
                  f"storm/unrelated {100 * storm / other:5.1f} % (target >= 50 %)")
        small, large = median(rates[backend, "storm", sizes[0]]), median(rates[backend, "storm", sizes[-1]])
        print(f"  {backend:10s} storm at {sizes[-1]} / at {sizes[0]}: {100 * large / small:5.1f} % "
              f"(target >= 80 %: flat)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
