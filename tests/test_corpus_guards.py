"""Conformance over every full message in the shared corpus, at the parse + guard level.

Each file is read as stored (CRLF, LF or CR-only, some deliberately broken). Proven here:
parse_message raises nothing but UnparseableMessage, and every bounce, DSN, ARF report,
read receipt and auto-reply (chosen by folder / file name, exceptions listed below with the
reason) gets a GuardHit, so the pipeline never acknowledges it.

Run ``python tests/test_corpus_guards.py [CORPUS_DIR]`` to print the tables of docs/corpus.md.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import SupportSettings
from intake.guards.bounces import failed_recipients
from intake.guards.rules import GuardContext, first_hit
from intake.parse.message import UnparseableMessage
from intake.parse.parser import parse_message

REPLY_BODY_FOLDERS = {  # bodies without headers: used by tests/test_quotes.py, not ingest
    "discourse-email_reply_trimmer", "crisp-email-reply-parser",
    "github-email_reply_parser", "zapier-email-reply-parser",
}
EXPECTATION_SUFFIXES = {".xml", ".json"}

# Must be stopped by a guard: whole folders of bounces / reports / auto-replies ...
AUTOMATIC_FOLDERS = (
    "sisimai-set-of-emails/bsd", "sisimai-set-of-emails/dos", "sisimai-set-of-emails/mac",
    "sisimai-set-of-emails/err", "sisimai-set-of-emails/tmp", "flufl-bounce", "cfortune-php-bounce-handler",
    "rtd-bounce_email/bounces", "rtd-bounce_email/non_bounces", "enmime/dsn", "mikel-mail/multipart_report_emails",
    "mailgun-flanker/bounce", "mailgun-flanker/complaints",
)
# ... and files elsewhere whose name says what they are.
AUTOMATIC_NAME = re.compile(
    r"bounce|dsn|delivery-status|disposition-notification|feedback-report|arf|fbl|complaint|rfc3834|"
    r"autorepl|out.?of.?office", re.I,
)
# Files in those folders that are not automatic mail, or not mail at all (reason shown in docs/corpus.md).
NOT_AUTOMATIC = {
    "flufl-bounce/groupwise_03.txt": "a human reply (flufl.bounce keeps it as a non-bounce case)",
    "rtd-bounce_email/non_bounces/tt_1234241664.txt": "a one-off 'please ignore this mail' mass mailing, "
    "no auto-reply header or subject",
    "cfortune-php-bounce-handler/unsubscribe.txt": "a log excerpt, not a mail (unparseable: quarantined)",
    "sisimai-set-of-emails/bsd/lhost-sendmail-14.eml": "a person forwarding a bounce ('Fwd: Returned mail', "
    "'Forward the message.'): a request for help, deliberately acknowledged",
    "sisimai-set-of-emails/err/make-test-36.eml": "a person forwarding a bounce ('Fwd: Returned mail' from "
    "the original sender): deliberately acknowledged",
}


@dataclass(frozen=True)
class Outcome:
    path: str  # relative to the corpus root
    folder: str
    result: str  # "unparseable", "ok" (no guard) or the guard rule
    detail: str  # reason or bounced recipients
    expected_automatic: bool


def full_messages(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in REPLY_BODY_FOLDERS or len(rel.parts) == 1:
            continue
        if path.suffix.lower() in EXPECTATION_SUFFIXES:
            continue
        files.append(path)
    return files


NOT_AUTOMATIC_FOLDERS = ("sisimai-set-of-emails/not", "rtd-bounce_email/fixtures")


def expected_automatic(rel: str) -> bool:
    folder = rel.rsplit("/", 1)[0]
    if rel in NOT_AUTOMATIC or folder in NOT_AUTOMATIC_FOLDERS:
        return False
    return folder in AUTOMATIC_FOLDERS or bool(AUTOMATIC_NAME.search(rel.rsplit("/", 1)[1]))


def run_corpus(root: Path) -> list[Outcome]:
    context = GuardContext(SupportSettings())
    outcomes = []
    for path in full_messages(root):
        rel = path.relative_to(root).as_posix()
        folder = rel.rsplit("/", 1)[0]
        try:
            parsed = parse_message(path.read_bytes())
        except UnparseableMessage as exc:
            outcomes.append(Outcome(rel, folder, "unparseable", str(exc), expected_automatic(rel)))
            continue
        hit = first_hit(parsed, context)
        # The detail is whom the bounce *names* (failed_recipients); whether that counts against anyone
        # (only for mail we sent, tests/test_bounce_rule.py) is not a corpus question: it has no mail of ours.
        result, detail = ("ok", "") if hit is None else (hit.rule, ",".join(failed_recipients(parsed)))
        outcomes.append(Outcome(rel, folder, result, detail, expected_automatic(rel)))
    return outcomes


@pytest.fixture(scope="module")
def outcomes(corpus_dir: Path) -> list[Outcome]:
    return run_corpus(corpus_dir)


def test_every_full_message_parses_or_is_unparseable_with_a_reason(outcomes: list[Outcome]) -> None:
    # run_corpus itself would raise on any other exception; here: enough mail, and reasons present.
    assert len(outcomes) > 1400
    unparseable = [o for o in outcomes if o.result == "unparseable"]
    assert all(o.detail for o in unparseable)
    assert len(unparseable) <= 10, [o.path for o in unparseable]


def test_every_bounce_report_and_auto_reply_gets_a_guard_hit(outcomes: list[Outcome]) -> None:
    expected = [o for o in outcomes if o.expected_automatic]
    assert len(expected) > 1000
    missed = [o.path for o in expected if o.result in ("ok", "unparseable")]
    assert missed == []


def test_sisimai_non_bounces_pass_except_the_labelled_postmaster_notice(outcomes: list[Outcome]) -> None:
    results = {o.path.rsplit("/", 1)[1]: o.result for o in outcomes if o.folder == "sisimai-set-of-emails/not"}
    assert results["is-not-bounce-01.eml"] == "ok"
    assert results["is-not-bounce-02.eml"] == "ok"  # a bounce attached as message/rfc822 by a human
    # rb-issue-368: From postmaster, Return-Path <>, Auto-Submitted: auto-replied, "bounce notification":
    # automatic by every header, so never acknowledged even though sisimai files it under not/.
    assert results["rb-issue-368-bug.eml"] != "ok"


def test_most_dsn_bounces_name_their_failed_recipient(outcomes: list[Outcome]) -> None:
    dsn = [o for o in outcomes if o.result == "dsn"]
    with_recipient = [o for o in dsn if o.detail]
    assert len(with_recipient) / len(dsn) > 0.85


def markdown(outcomes: list[Outcome]) -> str:
    """The per-folder table of docs/corpus.md."""
    rules = sorted({o.result for o in outcomes} - {"ok", "unparseable"})
    by_folder: dict[str, Counter[str]] = {}
    for o in outcomes:
        by_folder.setdefault(o.folder, Counter())[o.result] += 1
    head = ["folder", "files", "parsed", "unparseable", "no guard", *rules]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total: Counter[str] = Counter()
    for folder, counts in sorted(by_folder.items()):
        n = sum(counts.values())
        total.update(counts)
        row = [folder, n, n - counts["unparseable"], counts["unparseable"], counts["ok"]]
        lines.append("| " + " | ".join(str(v or "") if i > 0 else str(v) for i, v in
                                       enumerate(row + [counts[r] for r in rules])) + " |")
    n = sum(total.values())
    row = ["**all**", n, n - total["unparseable"], total["unparseable"], total["ok"], *[total[r] for r in rules]]
    lines.append("| " + " | ".join(f"**{v}**" if i else str(v) for i, v in enumerate(row)) + " |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus")
    result = run_corpus(root.resolve())
    print(markdown(result))
    print()
    expected = [o for o in result if o.expected_automatic]
    print(f"expected automatic: {len(expected)}, hit: {sum(o.result not in ('ok', 'unparseable') for o in expected)}")
    for o in result:
        if o.result == "unparseable" or (o.result != "ok" and not o.expected_automatic):
            print(f"- {o.path}: {o.result} {o.detail[:90]}")
    bounce_rules = ("dsn", "bounce_sender", "bounce_subject", "bounce_text", "null_sender")
    bounces = [o for o in result if o.result in bounce_rules]
    print(f"bounce hits: {len(bounces)}, with failed recipients: {sum(bool(o.detail) for o in bounces)}")
