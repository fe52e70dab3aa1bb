"""A forwarded report is read whole; a reply's quote is not (classifier.forwarded)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from classifier import Classifier, MailFacts
from classifier.forwarded import bare_subject, dequoted, is_forwarded
from classifier.mailfile import facts_from_bytes
from classifier.rules import DEFAULT_RULES

NOW = datetime(2027, 1, 12, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> Classifier:
    return Classifier.from_files([DEFAULT_RULES])


def _mail(subject: str, body: str) -> bytes:
    return (f"From: Fiona <fiona@customer.example>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
            "Message-ID: <a@customer.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}").encode()


CHASE = ("Hi again, see below, any news? This has now happened a second time today.\r\n\r\nFiona\r\n\r\n"
         "-----Original Message-----\r\nFrom: Fiona Drake\r\nSent: 03 December 2026 09:41\r\n"
         "To: support@example.com\r\nSubject: proposal sent to wrong client\r\n\r\n"
         "Our proposal for Hartwell Logistics, with their prices and contacts, was sent to another client.\r\n")


@pytest.mark.parametrize("subject", ["Fw: proposal sent to wrong client", "Re: Fw: proposal sent to wrong client",
                                     "WG: Angebot", "TR: proposition", "AW: WG: Angebot"])
def test_a_forward_is_read_with_its_forwarded_part(rules: Classifier, subject: str) -> None:
    facts = facts_from_bytes(_mail(subject, CHASE), NOW)
    assert facts.forwarded and "Hartwell" in facts.body
    verdict = rules.classify(facts)
    assert verdict.severity == "P1", verdict.explain()
    assert any(h.name == "sent-to-wrong-people" for h in verdict.rules), verdict.explain()


def test_a_forward_marker_makes_a_forward_without_the_subject_prefix(rules: Classifier) -> None:
    body = ("FYI, from our customer.\r\n\r\n---------- Forwarded message ---------\r\nFrom: Hartwell\r\n\r\n"
            "We received a quote with another company's prices and contacts on it.\r\n")
    facts = facts_from_bytes(_mail("customer complaint", body), NOW)
    assert facts.forwarded
    assert rules.classify(facts).severity == "P1"


def test_a_reply_is_read_without_its_quote(rules: Classifier) -> None:
    """Replies quote our acknowledgement or the old report: "thanks, works now" is not the outage again."""
    body = ("Thanks, it works again, you can close it.\r\n\r\nOn Mon, 11 Jan 2027 Support wrote:\r\n"
            "> The CRM is down for everyone, nobody can log in.\r\n")
    facts = facts_from_bytes(_mail("Re: CRM down for everyone", body), NOW)
    assert not facts.forwarded and "nobody can log in" not in facts.body
    assert rules.classify(facts).severity in ("P3", "P4")
    assert not is_forwarded("Re: Original Message", "-----Original Message-----\nFrom: x")


def test_quote_marks_come_off_and_the_prefix_chain_goes() -> None:
    assert dequoted("see below\n> > the quote\n>\n>x") == "see below\nthe quote\n\nx"
    assert bare_subject("Re: AW: Fwd: WG: TR: Angebot") == "Angebot"
    assert bare_subject("Fwd[2]: Angebot") == "Angebot"


def test_hostile_forwards_give_one_verdict_quickly(rules: Classifier) -> None:
    """Thousands of prefixes, quote marks and markers, NUL, invalid UTF-8, CR/LF: one verdict each."""
    subject = "Fw: " * 5000 + "quote\x00 sent to the wrong customers"
    body = ("> " * 20000 + "\n") + ">\r\n" * 20000 + "---------- Forwarded message ---------\n" * 3000 + "\udc80"
    verdict = rules.classify(MailFacts(subject, body, "a@x.example", forwarded=True))
    assert verdict.severity in ("P1", "P2", "P3", "P4")
    # One line of dashes, and many short ones: the first took the marker pattern ~20 s per 16,000 dashes
    # (quadratic backtracking) before its leading run stopped at the line's end.
    assert not is_forwarded("x", "-" * 100_000) and not is_forwarded("x", "-\n" * 50_000)
    raw = _mail("Fw: " * 2000 + "x", "\xff\xfe" + "> a\r\n" * 20000).replace(b"\xc3\xbf", b"\xff")
    facts = facts_from_bytes(raw, NOW)
    assert facts.forwarded
    assert rules.classify(facts).severity in ("P1", "P2", "P3", "P4")
