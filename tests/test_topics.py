"""Topics as human words: subjects -> meaningful terms; never rule ids, never stop words."""

from __future__ import annotations

from tickets.topics import terms, top_terms, topic_of


def test_terms_drop_stop_words_prefixes_and_ticket_keys():
    assert terms("Re: AW: Cannot log in to the CRM since this morning - HC-12 urgent!!") == ["log"]
    assert terms("Rechnung wird nicht erstellt / Invoice not generated") == [
        "rechnung", "erstellt", "invoice", "generated"]
    assert terms("invoice INVOICE Invoice") == ["invoice"]  # once per text
    assert terms("CRM is down for everyone") == ["down"]  # a generic stop word that names the problem


def test_top_terms_count_tickets_not_words_and_skip_singletons():
    subjects = ["Login fails", "login broken for sales", "Invoice PDF missing", "invoice totals wrong",
                "Opportunity stage picklist"]
    assert top_terms(subjects) == [("invoice", 2), ("login", 2)]
    ranking = dict(top_terms(subjects))
    assert topic_of("Login again", ranking) == "login" and topic_of("Opportunity", ranking) is None


def test_hostile_subjects():
    nasty = ["\x00\x00login\x00", "login\r\nBcc: x@example.com", "\udcff login", "", "\u202e login", "a" * 2_000_000]
    assert top_terms(nasty) == [("login", 4)]  # a two-megabyte word is no topic either
    assert top_terms(["login " * 100_000, "login"]) == [("login", 2)]
