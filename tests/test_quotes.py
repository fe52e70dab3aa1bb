"""trim_reply: quoted history and signatures removed; match rate on the discourse corpus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from intake.parse import quotes
from intake.parse.quotes import trim_reply


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def test_discourse_corpus_match_rate(corpus_dir: Path) -> None:
    """63/64 measured (docs/corpus.md); the one miss is an inline answer the reference keeps."""
    root = corpus_dir / "discourse-email_reply_trimmer"
    files = sorted((root / "emails").iterdir())
    misses = [
        f.name for f in files
        if not _same(trim_reply(f.read_text(encoding="utf-8")), (root / "trimmed" / f.name).read_text("utf-8"))
    ]
    assert len(files) == 64
    assert len(misses) <= 1, misses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks, works now.\n\nOn Mon, 23 Nov 2026 at 10:00, Support <support@example.com> wrote:\n> old\n",
         "Thanks, works now."),
        ("Danke!\n\nAm 23.11.2026 um 10:00 schrieb Support <support@example.com>:\n> alt\n", "Danke!"),
        ("Merci\n\nLe lun. 23 nov. 2026 à 10:00, Support <support@example.com> a écrit :\n> x\n", "Merci"),
        ("Fixed.\n\nOn Mon, Nov 23, 2026 at 10:00 AM Some Body <\nsome.body@example.com> wrote:\n\n> x\n",
         "Fixed."),
        ("Yes.\n\n-----Original Message-----\nFrom: Support\nSent: Monday\nTo: me\nSubject: x\n\nold text\n",
         "Yes."),
        ("Yes.\n\nFrom: Support <support@example.com>\nSent: Monday, 23 November 2026 10:00\n"
         "To: Ada <ada@example.com>\nSubject: RE: [HC-4] Login\n\nold text\n", "Yes."),
        ("Body text.\n\n-- \nAda Admin\nCRM team\n", "Body text."),
        ("Short answer.\n\nSent from my iPhone\n", "Short answer."),
        ("Kurze Antwort.\n\nVon meinem iPhone gesendet\n", "Kurze Antwort."),
        ("> only a quote\n", "> only a quote"),
        ("", ""),
        ("   \n\n", ""),
        ("Sent the export yesterday, see ticket.", "Sent the export yesterday, see ticket."),
        ("Use -- as separator in the CSV -- really.\nThanks", "Use -- as separator in the CSV -- really.\nThanks"),
    ],
)
def test_trim_cases(text: str, expected: str) -> None:
    assert trim_reply(text) == expected


def test_inline_answers_between_quotes_are_kept() -> None:
    text = ("On Mon, Support <support@example.com> wrote:\n> Which browser?\n\nFirefox 140.\n\n"
            "> Which CRM module?\n\nLeads.\n")
    trimmed = trim_reply(text)
    assert "Firefox 140." in trimmed and "Leads." in trimmed
    assert "> Which CRM module?" in trimmed
    assert "wrote:" not in trimmed


def test_code_fences_are_text() -> None:
    text = "Config:\n```\n--\n####\n> not a quote\n```\nDone."
    assert trim_reply(text) == text


def long_reply(lines: int) -> str:
    """*lines* lines of text above a quoted mail: the shape of a pasted log answered by mail."""
    return ("word " * 15 + "\n") * lines + "\nOn Mon, X <x@example.com> wrote:\n> q\n"


def counted(function: Callable[..., object], counts: dict[str, int]) -> Callable[..., object]:
    """*function*, counting its calls and the characters of the text it is given."""
    def call(*args: object, **kwargs: object) -> object:
        counts["calls"] += 1
        counts["chars"] += sum(len(a) for a in args if isinstance(a, str))
        return function(*args, **kwargs)

    return call


class CountingPattern:
    """Stands in for a compiled pattern (or the ``re`` module): every method call is counted."""

    def __init__(self, target: object, counts: dict[str, int]) -> None:
        self.target, self.counts = target, counts

    def __getattr__(self, name: str) -> object:
        attribute = getattr(self.target, name)
        return counted(attribute, self.counts) if callable(attribute) else attribute


def regex_work(text: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Calls of every pattern ``trim_reply`` uses (and of its substring pre-check) and the characters
    handed to them, for *text*."""
    counts = {"calls": 0, "chars": 0}
    with monkeypatch.context() as patch:
        for name in ("_WRAPPED_MARKER", "_HEADER", "_SIGNATURE", "_SIGNATURE_CJK", "_DELIMITER", "_SIG_DASHES",
                     "_QUOTE", "_FENCE", "re"):
            patch.setattr(quotes, name, CountingPattern(getattr(quotes, name), counts))
        patch.setattr(quotes, "_MARKERS", tuple(CountingPattern(m, counts) for m in quotes._MARKERS))
        patch.setattr(quotes, "_has_wrote", counted(quotes._has_wrote, counts))
        assert trim_reply(text).endswith("word")
    return counts


def test_a_long_reply_costs_linear_regex_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Twice the lines, twice the work: calls and characters read by the patterns are counted, not timed
    (the figure for a 6 MB body is in bench/quotes.py).  A pattern run over the rest of the text for every
    line, or a line classified again per line, would make the second count four times the first.
    What this cannot see is backtracking inside one regex call."""
    small, double = regex_work(long_reply(2_000), monkeypatch), regex_work(long_reply(4_000), monkeypatch)
    assert 1.8 < double["calls"] / small["calls"] < 2.2
    assert 1.8 < double["chars"] / small["chars"] < 2.2
    assert small["chars"] < 20 * len(long_reply(2_000))  # each character read a bounded number of times


def test_a_long_reply_is_trimmed() -> None:
    assert trim_reply(long_reply(70_000)).endswith("word")
