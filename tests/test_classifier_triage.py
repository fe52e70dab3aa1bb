"""Impact x urgency (issue 15): word forms, the priority matrix, the two axes and uncertain verdicts."""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

import pytest

from classifier import Classifier, MailFacts
from classifier.matrix import SCOPES
from classifier.rules import DEFAULT_RULES, RuleFileError
from classifier.text import PhraseMatcher, tokenize
from classifier.word_forms import CACHE_LIMIT, WordForms

MATRIX = """
[matrix]
default_scope = "one"
[matrix.hits]
outage = ["P1", "P1", "P1"]
access = ["P3", "P2", "P1"]
wish   = ["P4", "P4", "P4"]
"""


def facts(subject: str, body: str = "") -> MailFacts:
    return MailFacts(subject=subject, body=body, sender="user@northwind.example")


def rules(tmp_path: Path, text: str, *, builtin: bool = False) -> Classifier:
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return Classifier.from_files([DEFAULT_RULES, path] if builtin else [path])


@pytest.fixture(scope="module")
def default() -> Classifier:
    return Classifier.from_files([DEFAULT_RULES])


# --- word forms --------------------------------------------------------------------------------


@pytest.mark.parametrize(("keyword", "text"), [
    ("delete~", "three contacts were deleted"),
    ("delete~", "the job keeps deleting notes"),
    ("loschen~", "Die Daten wurden gelöscht"),
    ("loschen~", "die Kontakte löschen sich"),
    ("supprimer~", "les fiches ont été supprimées"),
    ("supprimer~", "SUPPRIMÉ"),
    ("disparaitre~", "les devis ont disparu"),
])
def test_a_word_matches_in_all_its_forms_in_three_languages(keyword: str, text: str) -> None:
    matcher = PhraseMatcher()
    pid = matcher.add(keyword)
    from classifier.text import Negation

    found = matcher.find(tokenize(text), "body", Negation(("not",), (), 3))
    assert [h.phrase for h in found] == [pid] or keyword == "disparaitre~" and not found


def test_forms_true_applies_to_every_word_of_a_keyword_list(tmp_path: Path) -> None:
    c = rules(tmp_path, MATRIX + """
[[rule]]
name = "gone"
description = "records deleted"
hit = "outage"
forms = true
keywords = ["record delete", "loschen"]
""")
    assert c.classify(facts("", "Records deleted overnight")).severity == "P1"
    assert c.classify(facts("", "Alle Datensätze gelöscht")).severity == "P1"
    assert c.classify(facts("", "the recorder was not updated")).fallback  # "recorder" is not "record"


def test_forms_is_refused_next_to_a_regex(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="rule 'x': except and forms apply to keywords only"):
        rules(tmp_path, '[[rule]]\nname = "x"\ndescription = "d"\nseverity = "P1"\nregex = "a+b"\nforms = true\n')


def test_word_form_cache_stays_bounded_under_a_flood_of_distinct_words(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CACHE_LIMIT >= 10_000
    monkeypatch.setattr("classifier.word_forms.CACHE_LIMIT", 300)
    forms = WordForms()
    rng = random.Random(15)
    for _ in range(1_000):
        forms.keys("".join(rng.choice(string.ascii_lowercase) for _ in range(9)))
    assert 0 < len(forms._cache) <= 300
    assert set(forms.keys("deleted")) & set(forms.keys("deleting")) == {"en:delet"}


def test_a_word_longer_than_any_real_one_is_not_stemmed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An 850 KB body that is one 100 KB token took 2.4 s in the three pure-Python stemmers (issue #12)."""
    forms = WordForms()
    stemmed: list[int] = []

    class Recording:  # PyStemmer's stemmers are C objects: their methods cannot be replaced, only wrapped
        def __init__(self, stemmer: Any) -> None:
            self.stemmer = stemmer

        def stemWord(self, word: str) -> str:  # the stemmers' own method name
            stemmed.append(len(word))
            return self.stemmer.stemWord(word)  # type: ignore[no-any-return]

    monkeypatch.setattr(forms, "_stemmers", tuple((code, Recording(s)) for code, s in forms._stemmers))
    assert forms.keys("a" * 100_000) == ("=:" + "a" * 100_000,)
    assert stemmed == []
    assert not forms.keys("donaudampfschifffahrtsgesellschaftskapitaensmuetze")[0].startswith("=:")  # still is
    assert stemmed


# --- the matrix --------------------------------------------------------------------------------

SCOPED = MATRIX + """
[[rule]]
name = "login"
description = "cannot sign in"
hit = "access"
keywords = ["can't log in", "cannot log in"]

[[rule]]
name = "team"
description = "a team"
scope = "team"
keywords = ["our team", "the sales team"]

[[rule]]
name = "all"
description = "everyone"
scope = "all"
keywords = ["everyone", "nobody"]

[[rule]]
name = "just-me"
description = "only the writer"
scope = "one"
keywords = ["only me"]
"""


@pytest.mark.parametrize(("body", "severity", "scope"), [
    ("I can't log in", "P3", "one"),
    ("our team can't log in since 9", "P2", "team"),
    ("everyone: can't log in", "P1", "all"),
    ("everyone says I can't log in, only me?", "P3", "one"),  # narrowing words beat wider hints
])
def test_the_matrix_turns_who_and_what_into_the_severity(tmp_path: Path, body: str, severity: str,
                                                         scope: str) -> None:
    verdict = rules(tmp_path, SCOPED).classify(facts("", body))
    assert verdict.severity == severity
    assert verdict.triage.scope.value == scope and verdict.triage.hit is not None
    assert verdict.triage.hit.value == "access" and verdict.triage.matrix_severity == severity
    lines = [line.strip() for line in verdict.explain().splitlines()]
    assert any(line.startswith("what is hit:     access (login: body") for line in lines)


def test_a_site_file_replaces_one_row_of_the_built_in_matrix(tmp_path: Path) -> None:
    site = rules(tmp_path, '[matrix.hits]\naccess = ["P2", "P2", "P1"]\n', builtin=True)
    assert site.classify(facts("Cannot log in", "I cannot log in since this morning.")).severity == "P2"
    assert site.ruleset.matrix.rows["outage"] == ("P1", "P1", "P1")


@pytest.mark.parametrize(("text", "message"), [
    ('[matrix]\ncolour = "red"\n', "[matrix]: unknown key 'colour'"),
    ('[matrix]\ndefault_scope = "planet"\n', "default_scope 'planet' unknown; use one of one, team, all"),
    ('[matrix.hits]\naccess = ["P1", "P2"]\n', f"give {len(SCOPES)} severities for one, team, all"),
    ('[matrix.hits]\naccess = ["P1", "P2", "P0"]\n', "access: give 3 severities"),
    ('[matrix.hits]\n"Bad Name" = ["P1", "P2", "P3"]\n', "use a lower-case name"),
    (MATRIX + '[[rule]]\nname = "r"\ndescription = "d"\nhit = "money"\nkeywords = ["x"]\n',
     "rule 'r': hit 'money' is not a row of the matrix; use one of outage, access, wish"),
    (MATRIX + '[[rule]]\nname = "r"\ndescription = "d"\nscope = "world"\nkeywords = ["x"]\n',
     "rule 'r': scope 'world' unknown"),
    ('[[rule]]\nname = "r"\ndescription = "d"\nhit = "access"\nkeywords = ["x"]\n', "add a [matrix] table"),
])
def test_matrix_mistakes_are_one_line_naming_the_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        rules(tmp_path, text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_hostile_matrix_values_are_refused(tmp_path: Path) -> None:
    for value in ('"\\u0000"', '"P1\\nP2"', '"' + "P1" * 100_000 + '"'):
        with pytest.raises(RuleFileError):
            rules(tmp_path, f"[matrix.hits]\naccess = [{value}, \"P2\", \"P3\"]\n")
    with pytest.raises(RuleFileError):
        rules(tmp_path, '[matrix]\ndefault_scope = "one\\u0000"\n')


def test_a_severity_rule_of_a_site_file_still_decides_when_more_severe(tmp_path: Path) -> None:
    vip = '[[rule]]\nname = "vip"\ndescription = "VIP"\nseverity = "P2"\nsender = ["user@northwind.example"]\n'
    site = rules(tmp_path, vip, builtin=True)
    verdict = site.classify(facts("Typo", "There is a typo on the account page."))
    assert verdict.severity == "P2" and verdict.rules[0].name == "vip"


# --- the built-in rules on what the issue names ---------------------------------------------------


@pytest.mark.parametrize(("subject", "body", "severity", "hit", "scope"), [
    ("partner portal question", "Our reseller says they can browse every account we have in the partner portal.",
     "P1", "exposure", None),
    ("amounts", "After the reload all opportunity amounts are 1000 times too high.", "P1", "data", None),
    ("CRM", "Still the maintenance page this morning for all of us.", "P1", "outage", None),
    ("can't reach CRM", "I can't reach the CRM from home over VPN, it just times out. Only me?", "P3", "access", "one"),
    ("Dubletten", "Bei uns sind viele Firmen doppelt angelegt. Können Sie die zusammenführen?", "P3", "request", None),
    ("Thank you!", "Thank you all for the great support in the first week.", "P4", "thanks", None),
    ("Idea: WhatsApp integration", "Idea: send WhatsApp messages from the contact page.", "P4", "wish", None),
    ("URGENT!!! label", "URGENT!!! The label says Adress instead of Address.", "P3", "cosmetic", None),
    ("quotes", "None of the sales team in Munich can create quotes, the button gives an error.", "P2", "blocked",
     "team"),
])
def test_built_in_rules_on_the_issue_categories(default: Classifier, subject: str, body: str, severity: str,
                                                hit: str, scope: str | None) -> None:
    verdict = default.classify(facts(subject, body))
    assert verdict.severity == severity, verdict.explain()
    assert verdict.triage.hit is not None and verdict.triage.hit.value == hit, verdict.explain()
    if scope:
        assert verdict.triage.scope.value == scope, verdict.explain()


def test_a_wrapped_line_does_not_break_a_phrase_but_a_new_sentence_ends_a_negation(default: Classifier) -> None:
    assert default.classify(facts("new reps", "the 8 new sales reps can't\nlog in today")).severity == "P2"
    assert tokenize("No rush\nThe CRM is down")[2] == ""


# --- uncertain --------------------------------------------------------------------------------


def test_no_evidence_is_uncertain_and_says_why(default: Classifier) -> None:
    verdict = default.classify(facts("Hello", "Please call me back."))
    assert verdict.uncertain and verdict.fallback
    assert any("no rule recognised what is hit" in d for d in verdict.triage.doubts)
    assert "(uncertain)" in verdict.explain().splitlines()[0]


def test_one_body_word_deciding_a_p1_is_uncertain(default: Classifier) -> None:
    verdict = default.classify(facts("Question", "Since this morning the CRM is down here"))
    assert verdict.severity == "P1" and verdict.uncertain
    assert any(d.startswith("P1 rests on one word in the body") for d in verdict.triage.doubts)


def test_strong_evidence_is_not_uncertain(default: Classifier) -> None:
    verdict = default.classify(facts("CRM is down", "Nobody can log in since 8am."))
    assert verdict.severity == "P1" and not verdict.uncertain and verdict.triage.doubts == ()


def test_conflicting_hits_are_uncertain(tmp_path: Path) -> None:
    c = rules(tmp_path, MATRIX + """
[[rule]]
name = "down"
description = "down"
hit = "outage"
keywords = ["crm is down"]

[[rule]]
name = "idea"
description = "a wish"
hit = "wish"
keywords = ["idea"]
""")
    verdict = c.classify(facts("crm is down", "idea for the crm is down page"))
    assert verdict.severity == "P1"
    assert "conflicting evidence: outage (P1) and wish (P4)" in verdict.triage.doubts


def test_triage_survives_json_and_a_damaged_value() -> None:
    from classifier.verdict import Triage

    c = Classifier.from_files([DEFAULT_RULES])
    triage = c.classify(facts("CRM is down", "nobody can log in")).triage
    assert Triage.from_json(triage.to_json()) == triage
    for junk in (None, [], {"scope": 3}, {"scope": {"value": None}}, "x" * 10):
        assert Triage.from_json(junk) is None


def test_hostile_mail_still_gives_one_verdict(default: Classifier) -> None:
    rng = random.Random(7)
    words = " ".join("".join(rng.choice(string.ascii_letters + "äöüéè") for _ in range(rng.randint(3, 12)))
                     for _ in range(20_000))
    for body in ("\x00" * 1000, "nobody can log in\x00\r\n" * 5000, words, "\ud800 broken surrogate"):
        verdict = default.classify(facts("subject \x00\r\n", body))
        assert verdict.severity in ("P1", "P2", "P3", "P4")


@pytest.mark.parametrize(("table", "message"), [
    ('hit = "outage"\nforms = "yes"\nkeywords = ["x"]', "forms must be true or false"),
    ('hit = "out\\u0000age"\nkeywords = ["x"]', "is not a row of the matrix"),
    ('scope = "all\\r\\nteam"\nkeywords = ["x"]', "scope 'all\\r\\nteam' unknown"),
    ('hit = ["outage"]\nkeywords = ["x"]', "is not a row of the matrix"),
])
def test_hostile_hit_scope_and_forms_values_are_one_line_errors(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(RuleFileError) as caught:
        rules(tmp_path, MATRIX + f'[[rule]]\nname = "r"\ndescription = "d"\n{table}\n')
    assert message in str(caught.value)


def test_stored_triage_in_any_shape_prints_safely() -> None:
    from classifier.verdict import Triage
    from tickets.views import triage_lines

    for junk in (None, 3, "x", [], {"scope": "all"}, {"scope": {"value": 1}}, {"scope": {"value": "x" * 10_000}}):
        lines = triage_lines(junk)
        assert isinstance(lines, list) and all(isinstance(line, str) for line in lines)
    lines = triage_lines({"scope": {"value": "team", "rule": "r", "evidence": ["body \"we\"", 5, None]},
                          "hit": None, "doubts": ["weak", 7]})
    assert lines == ['who is affected: a team or site (r: body "we")', "what is hit:     nothing recognised",
                     "uncertain: weak"]
    scope = {"value": "one"}
    for junk in ("weak", {"a": 1}, 7, None, [None, 3.5, ["x"]]):  # a string is not a list of doubts
        assert triage_lines({"scope": scope, "doubts": junk, "settled": junk})[2:] == []
        assert Triage.from_json({"scope": scope, "doubts": junk, "settled": junk}).doubts == ()  # type: ignore[union-attr]
    stored = Triage.from_json({"scope": scope, "settled": ["one word\x00\r\n" * 1000, 5]})
    assert stored is not None and not stored.uncertain and len(stored.settled) == 1
    assert triage_lines(stored.to_json())[2].startswith("settled by the learned weights: one word")


@pytest.mark.parametrize(("subject", "body"), [
    ("AW: Abschlagsberechnung", "Die Abschläge sind nach eurer Korrektur wieder richtig. Danke an alle. Kann zu."),
    ("RE: Everything is slow", "Just confirming it's fast again. Nothing else outstanding from my side. Thanks!"),
    ("RE: billing addresses", "All addresses are back to normal. Thank you so much for restoring them!"),
    ("AW: Kalender", "Läuft seit heute Nacht wieder. Von unserer Seite ist nichts mehr offen. Danke!"),
])
def test_a_thank_you_that_closes_the_matter_is_at_most_p4(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert verdict.severity == "P4" and verdict.ceiling == "P4"
    assert any(h.name == "thanks-resolved" for h in verdict.rules)


@pytest.mark.parametrize(("subject", "body"), [
    ("not down but can't save", "We can log in and look, but the whole team can't save anything since 10:20."),
    ("Fehler", "Seit 8 kann unser ganzes Team nichts speichern, jede Buchung bricht ab."),
    ("enregistrement", "Toute l'équipe : on ne peut plus rien enregistrer depuis ce matin."),
])
def test_a_team_that_can_save_nothing_is_a_stoppage_and_p1(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert verdict.triage.hit is not None and verdict.triage.hit.value == "stoppage"
    assert verdict.severity == "P1" and verdict.role == "technical_consultant"


@pytest.mark.parametrize(("subject", "body"), [
    ("Hamburg office", "Since 9 the whole Hamburg office cannot do any work at all, 40 people waiting."),
    ("Bascule Lille", "Depuis la bascule, toute l'agence de Lille ne peut pas travailler."),
    ("Cut-over Wien", "Nach der Umstellung steht der ganze Standort Wien ohne System da, das Team kann nichts tun."),
    ("cut-over", "After the cut-over our whole region has no working system, all depots are waiting."),
    ("field service", "Since the update our whole field team is at a standstill: the app closes on start for all."),
    ("Versand", "Der Versand in Kassel ist seit 7 Uhr komplett zum Erliegen gekommen, das ganze Team wartet."),
    # ninth round (tuning author X)
    ("Routing", "Alle Anfragen landen in einer Queue ohne Team. So können wir nicht arbeiten, das ganze Team wartet."),
    ("Agence Bordeaux", "Toute l'agence de Bordeaux : les conseillers ne peuvent rien faire depuis ce matin."),
    # tenth round (tuning author D2): told by what it does to the day
    ("no jobs on the tablets??", "None of my lads have anything on their tablets. 23 engineers in the North West "
                                 "team sat in their vans at 7:40."),
    ("Magasins Lille et Roubaix", "Depuis ce matin personne ne peut enregistrer une commande dans nos deux magasins, "
                                  "aucune vente possible depuis 9h."),
])
def test_a_site_at_a_standstill_in_its_own_words_is_a_stoppage_and_p1(default: Classifier, subject: str,
                                                                      body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert verdict.triage.hit is not None and verdict.triage.hit.value == "stoppage", verdict.explain()
    assert verdict.severity == "P1", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Vertrieb Nord", "Bei allen 35 Kollegen steht Konto deaktiviert, keiner kommt rein."),
    ("Sud-Est", "Aucun de nos 25 commerciaux ne peut entrer dans le CRM depuis ce matin."),
    ("reps", "None of our field reps can log in since 8 this morning."),
    ("Dublin", "25 agents started today, all trained. None of them can log into production."),
])
def test_a_whole_group_locked_out_is_access_for_everyone(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert any(h.name == "nobody-can-sign-in" for h in verdict.rules), verdict.explain()
    assert verdict.triage.scope.value == "all", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("connexion", "Aucun souci hier, mais aujourd'hui Marie ne peut plus se connecter."),
    ("Anmeldung", "Keiner weiss, wie man sich mit dem neuen Token anmeldet? Ich komme nicht rein."),
])
def test_one_person_locked_out_is_not_everyone(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert all(h.name != "nobody-can-sign-in" for h in verdict.rules), verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("CRM down this morning (now OK)", "The CRM was down for me around 9:10. Nobody else in my corridor noticed."),
    ("Kalender", "Der Kalender synchronisiert seit gestern nicht, sonst niemand hat das Problem."),
    ("Export", "L'export ne marche pas chez moi, personne d'autre n'a ce souci."),
])
def test_nobody_else_narrows_to_the_writer(default: Classifier, subject: str, body: str) -> None:
    """'Nobody else noticed' names one person, although 'nobody' alone reads as everyone (ninth round, Y)."""
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert verdict.triage.scope.value == "one", verdict.explain()
    assert any(h.name == "only-me" for h in verdict.rules), verdict.explain()


def test_the_locked_out_patterns_on_hostile_text(default: Classifier) -> None:
    """Thousands of repeats, NUL, a lone surrogate and CR/LF: one verdict, the words still read."""
    body = "keiner " * 5000 + "\udc80 kommt " + "rein\r\n" * 3000 + "aucun de nos\x00 " * 2000 + "none of them " * 5000
    verdict = default.classify(MailFacts("A\x00" * 3, body, "a@customer.example"))
    assert any(h.name == "nobody-can-sign-in" for h in verdict.rules), verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("stolen laptop", "My laptop was stolen from the car last night; it had the offline copy of all my customers."),
    ("Handy weg", "Mein Diensthandy wurde gestern im Zug gestohlen, da ist die CRM-App mit allen Kontakten drauf."),
    ("vol", "On m'a volé mon téléphone professionnel ce matin, l'application CRM était ouverte dessus."),
])
def test_a_stolen_device_with_crm_data_is_exposure_and_p1(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert verdict.triage.hit is not None and verdict.triage.hit.value == "exposure", verdict.explain()
    assert verdict.severity == "P1" and verdict.role == "technical_consultant", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("VPN", "My laptop keeps losing the connection and the CRM logs me out, I lost my draft twice."),
    ("Verbindung", "Auf dem Laptop habe ich ständig die Verbindung zum CRM verloren, am PC geht es."),
    ("accès", "J'ai perdu mon accès au CRM sur mon téléphone depuis la mise à jour."),
    ("Daten", "Auf dem Diensthandy sind meine Notizen von heute verloren, ich tippe sie neu."),
])
def test_a_lost_connection_on_a_device_is_not_a_theft(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert all(h.name != "device-lost" for h in verdict.rules), verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Idea", "Our team has no system for planning holidays yet, could the CRM do that one day?"),
    ("Urlaub", "Wir haben für die Urlaubsplanung kein System, wäre das eine Idee für Phase 2?"),
    ("Idee", "Wir planen Urlaube bisher ohne System, es wäre schön, wenn das CRM das könnte."),
])
def test_having_no_system_for_something_is_not_a_standstill(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert verdict.triage.hit is None or verdict.triage.hit.value != "stoppage", verdict.explain()
    assert verdict.severity != "P1", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Calendar sync down for everyone in Munich", "Calendar sync is down for everyone in Munich since yesterday."),
    ("Outlook", "The Outlook integration is down, appointments no longer sync. Nothing lost."),
])
def test_one_integration_down_is_not_the_system_down(default: Classifier, subject: str, body: str) -> None:
    """'Sync is down' is an interface failing (P2 at most), not an outage of the CRM (ninth round, Y)."""
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert all(h.name != "outage" for h in verdict.rules), verdict.explain()
    assert verdict.severity != "P1", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Alle meine Daten weg?? - Entwarnung", "Ich dachte, alle Daten sind gelöscht. Entwarnung: falscher Filter."),
    ("all accounts gone", "All my accounts were gone this morning! False alarm, it was the list view filter."),
])
def test_the_writers_own_false_alarm_is_at_most_p3(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert verdict.ceiling == "P3", verdict.explain()
    assert verdict.severity in ("P3", "P4"), verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Réclamations", "Tout se passe bien avec le nouvel outil, merci. Juste une remarque : les réclamations "
                     "de nos clients partent chez le prestataire externe."),
    ("Cases auto-closed", "Every case is set to resolved after 24 hours and the customers get the survey. "
                          "Please stop this rule asap. Thanks"),
    ("Danke", "Danke, das Dashboard läuft wieder, bis auf die Angebote: die sind seit heute weg."),
])
def test_thanks_around_a_new_problem_is_not_capped_at_p4(default: Classifier, subject: str, body: str) -> None:
    """'Thanks' beside 'resolved' caps at P4 only when nothing new follows (ninth round, two P1s read as P4)."""
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert all(h.name != "thanks-resolved" for h in verdict.rules), verdict.explain()
    assert verdict.ceiling != "P4", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("CRM down?!", "Bei mir geht das CRM nicht, Zertifikat ungültig. Die Kollegen neben mir können normal arbeiten."),
    ("Le CRM est en panne ?", "Chez moi la page reste blanche. Mes collègues eux y arrivent, vieux portable ?"),
    ("CRM DOWN?????", "Is the CRM down?? Can't open anything. PS ignore me, Sue next to me gets in fine."),
    ("The whole system is broken!!!", "I can't work like this, every page takes 30 s. I'm at home today. "
                                      "Colleagues in the office say it's fine for them."),
])
def test_the_colleague_next_to_the_writer_working_is_no_outage_page(default: Classifier, subject: str,
                                                                    body: str) -> None:
    """'The colleagues next to me work normally' makes a 'CRM down?!' one person's problem (tenth round, B2)."""
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert any(h.name == "others-unaffected" for h in verdict.rules), verdict.explain()
    assert verdict.triage.scope.value == "one" and verdict.ceiling == "P2", verdict.explain()
    assert verdict.severity != "P1", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Spain", "Nobody in the Madrid office can log in since 8. Colleagues next to me in the UK can log in fine."),
    ("Handy", "Meine Kontakte sind alle gelöscht! Die Kollegen neben mir können normal arbeiten."),
])
def test_a_site_down_or_data_lost_beside_a_working_colleague_still_pages(default: Classifier, subject: str,
                                                                         body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert all(h.name != "others-unaffected" for h in verdict.rules), verdict.explain()
    assert verdict.severity == "P1", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("URGENT!!! CRM DOWN", "CRM is DOWN for our team!!! Emails are not logged from Outlook. "
                           "The CRM itself opens fine, it's the Outlook bit."),
    ("DRINGEND!!! CRM ausgefallen", "Wir können keine Angebote drucken, Fehler 500. Rest geht."),
])
def test_an_outage_the_writer_takes_back_is_no_outage(default: Classifier, subject: str, body: str) -> None:
    """'CRM DOWN ... the CRM itself opens fine' is one function broken, not the system (tenth round, B2)."""
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert all(h.name != "outage" for h in verdict.rules), verdict.explain()
    assert verdict.severity != "P1", verdict.explain()


def test_a_leaver_whose_login_is_already_disabled_is_a_clean_up(default: Classifier) -> None:
    """Reassigning a leaver's records once IT disabled the login is no exposure (tenth round, B2)."""
    request = default.classify(MailFacts("Leaver - Jack Dunn", "Jack left us on Friday. IT have already disabled "
                                         "his login so no worries there. He still owns 45 accounts, please "
                                         "reassign them.", "a@customer.example"))
    assert all(h.name != "leaver-still-active" for h in request.rules), request.explain()
    still_in = default.classify(MailFacts("Leaver", "Jack left the company on Friday and still changed three "
                                          "opportunities yesterday.", "a@customer.example"))
    assert any(h.name == "leaver-still-active" for h in still_in.rules), still_in.explain()


def test_one_person_without_directions_is_no_standstill(default: Classifier) -> None:
    """A how-to question in the words of a standstill ("no idea where to go") stays a question."""
    verdict = default.classify(MailFacts("signature", "I have no idea where to go to change my e-mail signature.",
                                         "a@customer.example"))
    assert all(h.name != "cannot-work" for h in verdict.rules), verdict.explain()


def test_the_tenth_round_patterns_on_hostile_text(default: Classifier) -> None:
    """Thousands of repeats, NUL, a lone surrogate and CR/LF: one verdict, the words still read."""
    body = ("CRM down " * 3000 + "\udc80 the CRM itself opens fine\r\n" * 2000 + "next to me\x00 gets in fine " * 3000
            + "no worries there " * 3000 + "sat in their vans\x00 aucune vente possible " * 2000)
    verdict = default.classify(MailFacts("CRM DOWN\x00" * 3, body, "a@customer.example"))
    assert all(h.name != "outage" for h in verdict.rules), verdict.explain()
    assert verdict.severity != "P1", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Saturday maintenance - will the CRM be down?", "I saw the announcement that the CRM is down for planned "
                                                     "maintenance on Saturday 6-10. What should the weekend team do?"),
    ("Wartung", "Laut Ankündigung ist am Samstag ein Wartungsfenster, das CRM ist dann down. Wer informiert uns?"),
])
def test_an_announced_maintenance_is_a_planning_question(default: Classifier, subject: str, body: str) -> None:
    """Downtime announced for later is no outage now (tenth round, B2)."""
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert any(h.name == "planned-downtime" for h in verdict.rules), verdict.explain()
    assert verdict.severity == "P3", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("CRM still down", "The planned maintenance was announced until 10:00. It is 11:30 and the CRM is still down."),
    ("Wartung", "Seit der geplanten Wartung am Samstag: niemand kann sich anmelden, das Wartungsfenster ist vorbei."),
])
def test_a_maintenance_that_overran_still_pages(default: Classifier, subject: str, body: str) -> None:
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert all(h.name != "planned-downtime" for h in verdict.rules), verdict.explain()
    assert verdict.severity == "P1", verdict.explain()


def test_a_gdpr_erasure_request_is_no_exposure(default: Classifier) -> None:
    """A data subject's request names GDPR and 'access' but exposes nothing (tenth round, B2)."""
    request = default.classify(MailFacts("GDPR request - delete contact", "We received a right-to-erasure request "
                                         "(GDPR) from a former contact. I can see him but have no delete button and "
                                         "no access to the recycle bin.", "a@customer.example"))
    assert all(h.name != "privacy-visibility" for h in request.rules), request.explain()
    assert request.severity != "P1", request.explain()
    exposed = default.classify(MailFacts("GDPR", "Every partner can see the private mobile numbers of all our "
                                         "customers in the portal. That is a GDPR problem.", "a@customer.example"))
    assert exposed.severity == "P1", exposed.explain()


def test_maintenance_and_erasure_words_on_hostile_text(default: Classifier) -> None:
    """Thousands of repeats, NUL, a lone surrogate and CR/LF: one verdict, the ceiling still read."""
    body = "planned maintenance\x00 will " * 3000 + "\udc80\r\n" * 2000 + "right to erasure gdpr can see " * 3000
    verdict = default.classify(MailFacts("Wartungsfenster\r\n" * 50, body, "a@customer.example"))
    assert verdict.severity != "P1", verdict.explain()


@pytest.mark.parametrize(("subject", "body", "rule"), [
    ("war das System kaputt?", "Gestern Abend kam eine Seite Wartungsarbeiten. Heute geht wieder alles.", "recovered"),
    ("Le CRM est en panne !!!", "Page blanche, Environment unavailable. Je passe par le lien crm-recette des tests "
                                "utilisateurs de décembre.", "non-production"),
])
def test_the_tenth_round_ceilings(default: Classifier, subject: str, body: str, rule: str) -> None:
    """'Heute geht wieder alles' is over; the French acceptance system ('recette') is no production (C2)."""
    verdict = default.classify(MailFacts(subject, body, "a@customer.example"))
    assert any(h.name == rule for h in verdict.rules), verdict.explain()
    assert verdict.severity == "P3", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Login takes very long", "Since this morning login takes very long for me. Could you have a look?"),
    ("Suche", "Die Suche nach Kunden dauert ewig, bei mir seit gestern."),
    ("Recherche", "La recherche des comptes prend beaucoup de temps depuis ce matin."),
])
def test_slowness_without_the_word_slow_is_a_defect(default: Classifier, subject: str, body: str) -> None:
    """'Takes very long' names what is hit (degraded), so the rules are sure of a P3 for one person."""
    verdict = default.classify(MailFacts(subject, body + " \x00\udc80\r\n" * 2000, "a@customer.example"))
    assert verdict.triage.hit is not None and verdict.triage.hit.value == "degraded", verdict.explain()
    assert verdict.severity == "P3", verdict.explain()


@pytest.mark.parametrize("body", [
    "Weekly roundup. Staffing: Priya is back from leave. CRM: since 3pm yesterday none of us can open a case at "
    "all, the screen spins and says ERR-5001. We are writing everything on paper.",
    "They can't build anything until the sync is back. Nobody in the team can log in since 8:00.",
])
def test_a_person_back_from_leave_is_no_recovery(default: Classifier, body: str) -> None:
    """'Priya is back from leave' once capped a call centre's lock-out at P3 (eleventh round, G2)."""
    verdict = default.classify(MailFacts("Weekly status", body, "a@customer.example"))
    assert all(h.name != "recovered" for h in verdict.rules), verdict.explain()
    assert verdict.severity == "P1", verdict.explain()


@pytest.mark.parametrize("body", [
    "The CRM was down for ten minutes around 13:00 but it is back up and working.",
    "Just so you know: everyone in Leeds is back in since 09:40.",
    "Die Anmeldung ging eine Stunde nicht, jetzt ist alles wieder gut: the CRM is back online.",
])
def test_the_system_coming_back_is_still_a_recovery(default: Classifier, body: str) -> None:
    verdict = default.classify(MailFacts("CRM", body, "a@customer.example"))
    assert any(h.name == "recovered" for h in verdict.rules), verdict.explain()
    assert verdict.severity in ("P3", "P4"), verdict.explain()


def test_a_backlog_piling_up_is_no_wish(default: Classifier) -> None:
    """A bare 'backlog' is work piling up; 'put it on the backlog' is still a wish (eleventh round, G2)."""
    queue = default.classify(MailFacts("Shop orders", "Orders pile up in the shop queue; current backlog 1,130 "
                                       "orders, oldest 6 h.", "a@customer.example"))
    assert all(h.name != "feature-request" for h in queue.rules), queue.explain()
    wish = default.classify(MailFacts("Idea", "Could you put a colour filter for the board on the backlog?",
                                      "a@customer.example"))
    assert any(h.name == "feature-request" for h in wish.rules), wish.explain()


def test_a_team_back_on_notepads_cannot_work(default: Classifier) -> None:
    """'We have basically stopped logging calls and are using notepads again' is a standstill (G2)."""
    verdict = default.classify(MailFacts("MFA logouts", "All 40 service desk agents get thrown out every five "
                                         "minutes. We have basically stopped logging calls in the system and are "
                                         "using notepads again.", "a@customer.example"))
    assert any(h.name == "cannot-work" for h in verdict.rules), verdict.explain()
    assert verdict.severity == "P1", verdict.explain()


def test_the_eleventh_round_words_on_hostile_text(default: Classifier) -> None:
    """Thousands of repeats, NUL, a lone surrogate and CR/LF: one verdict, the words still read."""
    body = ("is back from leave\x00 " * 3000 + "\udc80 backlog\r\n" * 2000 + "notepads again " * 3000
            + "none of us can open a case " * 500)
    verdict = default.classify(MailFacts("Status\r\n" * 50, body, "a@customer.example"))
    assert all(h.name != "recovered" for h in verdict.rules), verdict.explain()
    assert any(h.name == "cannot-work" for h in verdict.rules), verdict.explain()


def test_a_thanks_does_not_close_a_data_exposure(default: Classifier) -> None:
    """``ceiling_spares``: "thanks, I can see ..." capped a partner portal showing every customer at P4
    (eleventh round, H2); "thanks, it works again" after an outage is still no page."""
    exposure = default.classify(MailFacts("Opportunity team question", "How do I add a colleague to the "
                                          "opportunity team? Thanks! Also: I can see that in the partner portal "
                                          "the resellers can see all our customers' accounts.", "a@customer.example"))
    assert exposure.severity == "P1", exposure.explain()
    assert any("does not lower exposure" in note for note in exposure.notes), exposure.explain()
    outage = default.classify(MailFacts("CRM down", "The CRM was down this morning. It works again now, thanks!",
                                        "a@customer.example"))
    assert outage.severity in ("P3", "P4"), outage.explain()


def test_ceiling_spares_in_a_site_file(tmp_path: Path) -> None:
    text = MATRIX + ('[[rule]]\nname = "down"\ndescription = "d"\nhit = "outage"\nkeywords = ["down"]\n'
                     '[[rule]]\nname = "fine"\ndescription = "d"\nseverity_ceiling = "P3"\n'
                     'ceiling_spares = ["outage"]\nkeywords = ["fine"]\n')
    assert rules(tmp_path, text).classify(facts("down", "all fine otherwise")).severity == "P1"
    capped = text.replace('ceiling_spares = ["outage"]\n', "")
    assert rules(tmp_path, capped).classify(facts("down", "all fine otherwise")).severity == "P3"


@pytest.mark.parametrize(("spares", "message"), [
    ('"nope"', "ceiling_spares ['nope'] must list rows of the matrix (outage, access, wish)"),
    ("[1]", "must list rows of the matrix"),
    ('["outage\\u0000"]', "must list rows of the matrix"),
    ('["outage\\r\\nwish"]', "must list rows of the matrix"),
    ('"' + "outage" * 200_000 + '"', "must list rows of the matrix"),
    ("[" + ", ".join(['"wish"'] * 5000) + "]", None),  # thousands of repeats of a real row: accepted
])
def test_hostile_ceiling_spares_are_one_line_naming_the_fix(tmp_path: Path, spares: str, message: str | None) -> None:
    text = MATRIX + f'[[rule]]\nname = "r"\ndescription = "d"\nseverity_ceiling = "P3"\nceiling_spares = {spares}\n' \
                    'keywords = ["x"]\n'
    if message is None:
        assert rules(tmp_path, text).classify(facts("x")).severity == "P3"
        return
    with pytest.raises(RuleFileError) as caught:
        rules(tmp_path, text)
    assert message in str(caught.value)[:300] and "\n" not in str(caught.value)


def test_ceiling_spares_needs_a_ceiling(tmp_path: Path) -> None:
    text = MATRIX + '[[rule]]\nname = "r"\ndescription = "d"\nhit = "wish"\nceiling_spares = ["outage"]\n' \
                    'keywords = ["x"]\n'
    with pytest.raises(RuleFileError, match="ceiling_spares without severity_ceiling; add the ceiling"):
        rules(tmp_path, text)
