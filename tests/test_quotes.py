"""trim_reply: quoted history and signatures removed; match rate on the discourse corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_large_body_is_fast() -> None:
    import time

    text = ("word " * 15 + "\n") * 70000 + "\nOn Mon, X <x@example.com> wrote:\n> q\n"
    start = time.perf_counter()
    trimmed = trim_reply(text)
    assert time.perf_counter() - start < 3
    assert trimmed.endswith("word")
