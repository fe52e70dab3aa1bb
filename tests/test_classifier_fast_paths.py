"""The classifier's shortcuts (issue 15: speed) give exactly what the plain way gives.

Each shortcut of the rules path is checked against the plain computation it replaces: the
start-anchored tokenizer patterns against their plain spellings, the chunk-wise literal search
against the whole-text trie scan, and the tests a regex must pass before it runs (a second literal,
a digit) against running it.  bench/classify_same.py compares whole verdicts between two trees.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from classifier import Classifier, MailFacts
from classifier import regexes as regex_module
from classifier import text as text_module
from classifier.regexes import needs
from classifier.rules import DEFAULT_RULES
from classifier.text import Negation, PhraseMatcher, tokenize

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
# The spellings before the speed work: "re" tried them at every character.
PLAIN_SOFT_BREAK = re.compile(r"[ \t]*\n(?![ \t]*(?:[A-Z\u00c0-\u00de]|[-*\u2022>]|\d|\n|$))[ \t]*")
PLAIN_ELISION = re.compile(r"\b([ldnjsctmLDNJSCTM]|[qQ]u)['\u2019](?=\w)")
PLAIN_APOSTROPHE = re.compile(r"(?<=\w)['\u2019](?=\w)")


@pytest.fixture(scope="module")
def default() -> Classifier:
    return Classifier.from_files([DEFAULT_RULES], timezone="Europe/Berlin")


def build(tmp_path: Path, text: str) -> Classifier:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return Classifier.from_files([path], timezone="Europe/Berlin")


def test_the_anchored_tokenizer_patterns_match_their_plain_spellings() -> None:
    rng = random.Random(15)
    alphabet = [" ", "\t", "\n", "a", "B", "l", "L", "q", "u", "Q", "'", "\u2019", "1", "-", "\u00e9", "_", ".",
                ">", "\u00c9", "d", "x"]
    for _ in range(30_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert text_module._SOFT_BREAK.sub(" ", text) == PLAIN_SOFT_BREAK.sub(" ", text), text
        fast = text_module._APOSTROPHE.sub("", text_module._ELISION.sub(" ", text))
        assert fast == PLAIN_APOSTROPHE.sub("", PLAIN_ELISION.sub(r"\1 ", text)), text


def test_chunk_wise_literal_search_finds_what_the_whole_text_scan_finds(default: Classifier) -> None:
    scanner = default._regexes
    assert scanner is not None
    literals = list(scanner._by_literal)
    rng = random.Random(15)
    separators = [" ", "  ", "\n", "\t", "\u00a0", "", ",", ".", "-", "x", "\u00e9", "'"]

    def scanned(lowered: str) -> set[int]:
        return {rid for literal in scanner.literals_in(lowered) for rid in scanner._by_literal[literal]}

    for _ in range(5_000):
        parts = []
        for _ in range(rng.randint(1, 6)):
            literal = rng.choice(literals)
            if rng.random() < 0.5:  # a piece of one
                start = rng.randint(0, len(literal))
                literal = literal[start:rng.randint(start, len(literal))]
            parts += [literal, rng.choice(separators)]
        lowered = "".join(parts).lower()
        assert scanner.literal_rids(lowered) == scanned(lowered), lowered


def test_a_text_of_many_new_chunks_is_scanned_whole_and_nothing_is_remembered(default: Classifier) -> None:
    scanner = default._regexes
    assert scanner is not None
    before = len(scanner._chunks)
    lowered = " ".join(f"w{i}x" for i in range(regex_module.MAX_NEW_CHUNKS + 1)) + " nobody can"
    assert scanner.literal_rids(lowered) == {rid for literal in scanner.literals_in(lowered)
                                             for rid in scanner._by_literal[literal]}
    assert len(scanner._chunks) == before
    long_chunk = "y" * (regex_module.MAX_CHUNK_CHARS + 1)
    scanner.literal_rids(f"{long_chunk} nobody")
    assert long_chunk not in scanner._chunks


def test_the_needs_of_a_regex() -> None:
    question = needs(re.compile(r"(?:^|[.!?]\s+)(?:how|why)\b[^.!?\n]{0,160}\?", re.IGNORECASE))
    assert question.literals == {"how", "why"} and question.others == (frozenset({"?"}),)
    assert not question.digit
    counted = needs(re.compile(r"\b\d+\s+(?:of|out of)\s+us\b", re.IGNORECASE))
    assert counted.digit and counted.from_digit
    money = needs(re.compile(r"(?:€|\$)\s*0[,.]00\b", re.IGNORECASE))
    assert money.digit and not money.from_digit
    assert not needs(re.compile(r"(?:\d|a)b{3}", re.IGNORECASE)).digit
    assert not needs(re.compile(r"x?\d*yyy", re.IGNORECASE)).from_digit


def test_a_regex_missing_a_need_is_not_run_and_one_meeting_them_is(tmp_path: Path) -> None:
    c = build(tmp_path, r"""
[[rule]]
name = "question"
description = "a question"
tags = ["question"]
regex = '(?:^|[.!?]\s+)(?:how|why)\b[^.!?\n]{0,160}\?'

[[rule]]
name = "counted"
description = "a count of us"
tags = ["counted"]
regex = '\b\d+\s+(?:of|out of)\s+us\b'
""")
    mail = MailFacts("", "How do I export? 12 of us wait. x12 of us do not count.", "a@b.example",
                     received_at=MONDAY_10)
    verdict = c.classify(mail)
    assert verdict.tags == ("question", "counted")
    assert [hit.evidence for hit in verdict.rules[:2]] == [('body "How do I export?"',), ('body "12 of us"',)]
    assert c.classify(MailFacts("", "How do I export. Twelve of us wait.", "a@b.example")).tags == ()


def test_letters_that_ignorecase_folds_apart_from_lower_still_run_the_regex(tmp_path: Path) -> None:
    """"ſ" is "s" to re.IGNORECASE but not to str.lower(): the "in" tests are skipped, the regex runs."""
    c = build(tmp_path, r"""
[[rule]]
name = "nobody"
description = "nobody can use it"
tags = ["nobody"]
regex = '\bnobody\b[^.]{0,20}\buse\b'
""")
    scanner = c._regexes
    assert scanner is not None and scanner._needs[0].others == (frozenset({"use"}),)
    assert c.classify(MailFacts("", "Nobody can u\u017fe it", "a@b.example")).tags == ("nobody",)
    assert c.classify(MailFacts("", "Nobody can see it", "a@b.example")).tags == ()


def test_the_word_memo_restarts_when_full_and_hits_stay_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    matcher = PhraseMatcher()
    pid = matcher.add("crm is down")
    negation = Negation(("not",), (), 3)
    tokens = tokenize("the crm is down, the crm is not down")
    expected = matcher.find(tokens, "body", negation)
    monkeypatch.setattr(text_module, "START_CACHE_LIMIT", 4)
    for i in range(20):
        matcher.find(tokenize(f"word{i} other{i} crm is down"), "body", negation)
        assert len(matcher._starts) <= 4
    assert matcher.find(tokens, "body", negation) == expected
    assert [(h.phrase, h.start, h.negated) for h in expected] == [(pid, 1, False)]
