"""The learned weights next to the rules (classifier/learned.py): decisions, evidence, files, training."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
from desk_kit import desk_config, outbox, report, team_reply, ticket

from classifier import Classifier, MailFacts
from classifier.cli import cmd_check, cmd_classify, cmd_train
from classifier.combination import DEFAULT_POLICY, combine
from classifier.learned import (
    BUILTIN_WEIGHTS,
    FORMAT,
    MAX_FILE_BYTES,
    MAX_TERMS,
    TFIDF_FORMAT,
    LearnedFileError,
    LearnedModel,
    load_configured,
    stem,
)
from classifier.rules import DEFAULT_RULES
from config import Config, RulesSettings

# A P1 word no rule knows ("zahnrad", a made-up failure word) and an owner word for it.
WEIGHTS = {
    "format": FORMAT,
    "p1_threshold": 0.5,
    "severity": {"classes": ["P1", "P2", "P3", "P4"], "intercept": [0.0, 0.0, 1.0, 0.0],
                 "weights": {stem("zahnrad"): [4.0, 0.0, -1.0, -1.0], "danke": [-1.0, -1.0, -1.0, 3.0]}},
    "role": {"classes": ["crm_admin", "business_analyst", "technical_consultant", "project_manager"],
             "intercept": [0.5, 0.0, 0.0, 0.0],
             "weights": {f"{stem('zahnrad')} {stem('klemmt')}": [0.0, 0.0, 3.0, 0.0]}},
}
UNKNOWN_P1 = MailFacts("Frage", "Das Zahnrad klemmt seit heute morgen", "anna@customer.example")


def weights_file(tmp_path: Path, data: object = WEIGHTS, name: str = "weights.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def with_learned(tmp_path: Path, setting: str) -> Classifier:
    return Classifier.from_config(Config(base_dir=tmp_path, rules=RulesSettings(learned=setting)))


def test_a_mail_no_rule_knows_gets_the_learned_severity_and_owner_with_the_terms_as_evidence(tmp_path: Path) -> None:
    weights_file(tmp_path)
    rules_only = with_learned(tmp_path, "off").classify(UNKNOWN_P1)
    assert rules_only.severity == "P3" and rules_only.uncertain  # the fallback: no rule recognised it

    verdict = with_learned(tmp_path, "weights.json").classify(UNKNOWN_P1)
    assert (verdict.severity, verdict.role) == ("P1", "technical_consultant")
    learned = verdict.rules[0]
    assert learned.name == "learned" and learned.severity == "P1" and learned.role == "technical_consultant"
    assert learned.evidence == ("learned: 'zahnrad' +4.00", "learned: 'zahnrad klemmt' +3.00")
    assert any("by the learned weights" in note for note in verdict.notes)
    # The rules did not know, but the weights confirm P1 and the owner (p >= 0.6): certain, and the rules'
    # doubt is kept as a note, so ``show`` still says what they lacked.
    assert not verdict.uncertain and verdict.triage.doubts == ()
    assert any(d.startswith("no rule recognised what is hit") for d in verdict.triage.settled)
    assert any(line.startswith("settled by the learned weights: no rule recognised") for line in verdict.triage.lines())


def test_classify_prints_the_learned_terms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import io
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from tickets.clock import FrozenClock

    weights_file(tmp_path)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(b"From: anna@customer.example\r\nTo: support@x.example\r\nSubject: Frage\r\n\r\n"
                     b"Das Zahnrad klemmt seit heute morgen\r\n")
    config = Config(base_dir=tmp_path, rules=RulesSettings(learned="weights.json"))
    app = SimpleNamespace(config=config, clock=FrozenClock(datetime(2026, 11, 23, 9, tzinfo=UTC)), out=io.StringIO(),
                          classifier=Classifier.from_config(config))
    assert cmd_classify(app, argparse.Namespace(files=[str(mail)], json=False)) == 0
    out = app.out.getvalue()
    assert ": P1 technical_consultant" in out
    assert "learned (P1, technical_consultant): learned: 'zahnrad' +4.00; learned: 'zahnrad klemmt' +3.00" in out


def test_a_site_that_cannot_work_stays_p1_however_the_weights_lean() -> None:
    """The matrix's P1 for a stoppage with its reach named is not the weights' to lower (``keep_standstill``;
    author-out CV A-T with ``p1_sure`` back at 0.4: P1 818 -> 820 of 884, precision 85.5 -> 85.4 %)."""
    leaning_p2 = _model({stem("office"): [-3.0, 3.0, 0.0, 0.0], stem("morning"): [-3.0, 3.0, 0.0, 0.0]})
    classifier = Classifier.from_files([DEFAULT_RULES], learned=leaning_p2)
    site = MailFacts("Hilfe", "Since 9 the whole Hamburg office cannot do any work, 40 people waiting.", "a@x")
    verdict = classifier.classify(site)
    assert verdict.triage.hit is not None and verdict.triage.hit.value == "stoppage"
    assert verdict.triage.scope.value == "team" and verdict.severity == "P1"
    assert combine(Classifier.from_files([DEFAULT_RULES]).classify(site), leaning_p2.opinion([["office"]]),
                   leaning_p2, dataclasses.replace(DEFAULT_POLICY, keep_standstill=False)).severity == "P2"
    # One person who cannot work is the matrix's P2; a P1 on another hit is still lowered (below).
    alone = MailFacts("Hilfe", "I cannot do any work this morning.", "a@x.example")
    assert classifier.classify(alone).severity == "P2"


@pytest.mark.parametrize("effect", ['severity = "P1"', 'severity_floor = "P1"'])
def test_a_site_rules_p1_holds_against_the_weights_where_the_matrix_says_p1_too(tmp_path: Path, effect: str) -> None:
    """A site's fixed severity or floor is never undercut by the weights, also when the matrix gave the same
    P1 anyway: then nothing told the weights' limits that a rule had fixed it, and a doubted P1 ("contacts have
    disappeared", one body word) was lowered to the weights' P2 although the site said P1 (``Verdict.floor``)."""
    leaning_p2 = _model({stem("contacts"): [-3.0, 3.0, 0.0, 0.0], stem("disappeared"): [-3.0, 3.0, 0.0, 0.0]})
    mail = MailFacts("Contacts", "Contacts have disappeared.", "a@x.example")
    assert Classifier.from_files([DEFAULT_RULES], learned=leaning_p2).classify(mail).severity == "P2"
    site = tmp_path / "site.toml"
    site.write_text(f'[[rule]]\nname = "contacts-p1"\ndescription = "site: contacts are P1"\n{effect}\n'
                    'keywords = ["contacts"]\n', encoding="utf-8")
    rules = Classifier.from_files([DEFAULT_RULES, site])
    pinned = rules.classify(mail)
    assert pinned.triage.matrix_severity == "P1" and pinned.floor == "P1"
    assert Classifier.from_files([DEFAULT_RULES, site], learned=leaning_p2).classify(mail).severity == "P1"
    # The paragraph head's lowering is held by the same floor: no paragraph, nor the whole mail, reads as P1.
    doubting = dataclasses.replace(leaning_p2.opinion([["contacts", "disappeared"]]), paragraph_p1=0.01)
    assert doubting.p1 < DEFAULT_POLICY.lower_p1_paragraph
    assert combine(pinned, doubting, leaning_p2).severity == "P1"
    assert combine(Classifier.from_files([DEFAULT_RULES]).classify(mail), doubting, leaning_p2).severity == "P2"


def test_a_site_floor_under_the_matrix_lets_the_weights_lower_only_down_to_it(tmp_path: Path) -> None:
    """A floor at P2 beside the matrix's P1: the weights may lower the P1 to P2, never to P3."""
    leaning_p3 = _model({stem("contacts"): [-3.0, 0.0, 3.0, 0.0], stem("disappeared"): [-3.0, 0.0, 3.0, 0.0]})
    mail = MailFacts("Contacts", "Contacts have disappeared.", "a@x.example")
    assert Classifier.from_files([DEFAULT_RULES], learned=leaning_p3).classify(mail).severity == "P3"
    site = tmp_path / "site.toml"
    site.write_text('[[rule]]\nname = "contacts-p2"\ndescription = "site: contacts at least P2"\n'
                    'severity_floor = "P2"\nkeywords = ["contacts"]\n', encoding="utf-8")
    assert Classifier.from_files([DEFAULT_RULES, site], learned=leaning_p3).classify(mail).severity == "P2"


def test_a_site_rule_with_a_fixed_p4_and_a_floor_is_not_lowered_by_the_wish_guard(tmp_path: Path) -> None:
    """Limits that cross: a site rule fixing P4 with a floor at P2 (the rules give P2) looks like a wish to the
    guard, which capped the weights at P3 below the floor; the floor holds (found by review, fourteenth round)."""
    leaning_p1 = _model({stem("zahnrad"): [3.0, -3.0, 0.0, 0.0]})
    site = tmp_path / "site.toml"
    site.write_text('[[rule]]\nname = "gear"\ndescription = "site: gears"\nseverity = "P4"\n'
                    'severity_floor = "P2"\nkeywords = ["zahnrad"]\n', encoding="utf-8")
    mail = MailFacts("Frage", "Das Zahnrad klemmt.", "a@x.example")
    assert Classifier.from_files([DEFAULT_RULES, site]).classify(mail).severity == "P2"
    assert Classifier.from_files([DEFAULT_RULES, site], learned=leaning_p1).classify(mail).severity == "P2"


def test_a_sure_rule_verdict_stands_and_a_learned_p1_raises_it(tmp_path: Path) -> None:
    weights_file(tmp_path)
    classifier = with_learned(tmp_path, "weights.json")
    down = classifier.classify(MailFacts("CRM is down", "Nobody can log in since 8am, the whole company is waiting.",
                                         "a@customer.example"))
    assert down.severity == "P1" and all(h.name != "learned" for h in down.rules)
    typo = MailFacts("Typo on the account page", "The label says 'Acount'. Also the Zahnrad klemmt.", "a@x.example")
    assert with_learned(tmp_path, "off").classify(typo).severity != "P1"
    raised = classifier.classify(typo)
    assert raised.severity == "P1" and raised.rules[0].name == "learned"
    # The raise is recorded; the weights are sure of P1 and the owner, so it is settled, not a doubt.
    assert not raised.uncertain
    assert any(d.startswith("the learned weights say P1") for d in raised.triage.settled)


def test_show_and_the_team_notice_print_the_learned_evidence(make_app, tmp_path: Path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    weights_file(tmp_path)
    config = dataclasses.replace(desk_config(tmp_path, db_url=db_url), rules=RulesSettings(learned="weights.json"))
    app = make_app(config)
    key = report(app, ("Frage", "Das Zahnrad klemmt seit heute morgen"))
    row = ticket(app, key)
    assert row.severity == "P1" and row.classification[0]["name"] == "learned"
    assert row.classification[0]["evidence"][0] == "learned: 'zahnrad' +4.00"
    from tickets.cli import cmd_show

    assert cmd_show(app, argparse.Namespace(key=key, json=False)) == 0
    assert "learned: 'zahnrad' +4.00" in app.out.getvalue()
    from email import message_from_bytes, policy

    page = message_from_bytes(outbox(app, "escalation")[0].mime, policy=policy.default)
    text = str(page.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "learned: Learned weights (weights.json)" in text and "learned: 'zahnrad' +4.00" in text


def test_the_built_in_weights_load_deterministically_within_limits() -> None:
    first, second = LearnedModel.load(BUILTIN_WEIGHTS), LearnedModel.load(BUILTIN_WEIGHTS)
    assert first == second and first.to_json() == second.to_json()
    assert BUILTIN_WEIGHTS.stat().st_size < MAX_FILE_BYTES
    assert 1000 < len(first.severity.weights) <= MAX_TERMS and 1000 < len(first.role.weights) <= MAX_TERMS
    assert first.idf is not None and set(first.severity.weights) <= set(first.idf)
    assert first.severity.classes == ("P1", "P2", "P3", "P4")
    default = Classifier.from_config(Config())
    assert default.learned == first


@pytest.mark.parametrize(("content", "message"), [
    (None, "learned weights file not found"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b'{"format": "x"}', "not a learned weights file"),
    (json.dumps({**WEIGHTS, "severity": {**WEIGHTS["severity"], "intercept": [0, 0, 0]}}).encode(), "intercept"),
    (json.dumps(WEIGHTS).replace("4.0", "NaN").encode(), "NaN is not a weight"),
    (json.dumps(WEIGHTS).replace("4.0", "1e308").encode(), "not a finite weight"),
    (json.dumps(WEIGHTS).replace("4.0", "1e999").encode(), "not a finite weight"),  # inf, not "Infinity"
    (json.dumps(WEIGHTS).replace("4.0", "Infinity").encode(), "Infinity is not a weight"),
    (json.dumps(WEIGHTS).replace("4.0", "true").encode(), "not a finite weight"),
    (json.dumps({**WEIGHTS, "p1_threshold": 7}).encode(), "p1_threshold"),
    (json.dumps({**WEIGHTS, "role": {**WEIGHTS["role"], "classes": ["crm_admin", "ceo", "x", "y"]}}).encode(),
     "classes must be"),
    (json.dumps({**WEIGHTS, "severity": {**WEIGHTS["severity"], "weights": {"a\x00b": [0, 0, 0, 0]}}}).encode(),
     "is not a term"),
    (json.dumps({**WEIGHTS, "severity": {**WEIGHTS["severity"],
                                         "weights": {f"t{n}": [0, 0, 0, 0] for n in range(20001)}}}).encode(),
     "20001 terms"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT}).encode(), "idf: missing"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT, "idf": {"danke": 1.0}}).encode(), "has weights but no idf"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT, "idf": {"danke": 0}}).encode(), "is not an idf"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT, "idf": {"danke": -2.5}}).encode(), "is not an idf"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT, "idf": {"danke": "1"}}).encode(), "is not an idf"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT, "idf": {"danke": 1e300}}).encode(), "is not an idf"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT, "idf": {"a\r\nb": 1.0}}).encode(), "is not a term"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT, "idf": [1.0]}).encode(), "idf: missing"),
    (json.dumps({**WEIGHTS, "format": TFIDF_FORMAT, "idf": {f"t{n}": 1.0 for n in range(20001)}}).encode(),
     "idf: 20001 terms"),
    (b" " * (MAX_FILE_BYTES + 1), "a learned weights file is at most"),
])
def test_hostile_weight_files_are_one_line_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    if content is not None:
        (tmp_path / "weights.json").write_bytes(content)
    with pytest.raises(LearnedFileError) as caught:
        with_learned(tmp_path, "weights.json")
    assert message in str(caught.value) and "\n" not in str(caught.value)


# Every weight a float, as the built-in file has them: the load checks such files in C (``_plain_rows``,
# ``_plain_terms``), so one bad value among them must still be found and named.
_FLOATS = {**WEIGHTS, "format": TFIDF_FORMAT,
           "idf": {stem("zahnrad"): 2.0, "danke": 1.5, f"{stem('zahnrad')} {stem('klemmt')}": 3.0},
           "p1_paragraph": {"intercept": -1.0, "weights": {stem("zahnrad"): 2.0, "danke": -0.5}}}


def _with(path: tuple[str, ...], value: object) -> dict[str, object]:
    data = json.loads(json.dumps(_FLOATS))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(("data", "message"), [
    (_with(("severity", "weights"), {"a\x00b": [0.0, 0.0, 0.0, 0.0]}), "is not a term"),
    (_with(("severity", "weights"), {"": [0.0, 0.0, 0.0, 0.0]}), "is not a term"),
    (_with(("severity", "weights"), {"x" * 201: [0.0, 0.0, 0.0, 0.0]}), "is not a term"),
    (_with(("severity", "weights"), {"danke": [0.0, 0.0, 0.0]}), "expected a list of 4 numbers"),
    (_with(("severity", "weights"), {"danke": {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}}), "expected a list"),
    (_with(("severity", "weights"), {"danke": [0.0, 0.0, 0.0, 100.5]}), "not a finite weight"),
    (_with(("severity", "weights"), {"danke": [0.0, 0.0, 0.0, True]}), "not a finite weight"),
    (_with(("severity", "weights"), {"danke": [0.0, 0.0, 0.0, "1.0"]}), "not a finite weight"),
    (_with(("p1_paragraph", "weights"), {"unknown": 1.0}), "is not in the vocabulary"),
    (_with(("p1_paragraph", "weights"), {"danke": 1e300}), "not a finite weight"),
    (_with(("p1_paragraph", "weights"), {"danke": False}), "not a finite weight"),
    (_with(("p1_paragraph", "weights"), {"danke": [1.0]}), "not a finite weight"),
])
def test_a_bad_value_among_floats_is_found_as_among_any_numbers(tmp_path: Path, data: dict[str, object],
                                                                  message: str) -> None:
    assert with_learned(tmp_path, str(weights_file(tmp_path, _FLOATS))).learned is not None  # the base is good
    weights_file(tmp_path, data)
    with pytest.raises(LearnedFileError) as caught:
        with_learned(tmp_path, "weights.json")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_nan_anywhere_among_floats_is_refused_and_integers_load_as_their_floats() -> None:
    """``_plain_rows`` checks with ``max``, which passes over a NaN that is not first (a file cannot hold one,
    ``from_json`` of Python values can); integer weights take the checked path and become the same floats."""
    for row in ([0.0, float("nan"), 0.0, 0.0], [float("nan"), 0.0, 0.0, 0.0]):
        with pytest.raises(LearnedFileError, match="not a finite weight"):
            LearnedModel.from_json(_with(("severity", "weights"), {"danke": row}), "nan.json")
    whole = LearnedModel.from_json(_with(("severity", "weights"), {"danke": [1.0, 0.0, -2.0, 3.0]}), "floats.json")
    integers = LearnedModel.from_json(_with(("severity", "weights"), {"danke": [1, 0, -2, 3]}), "ints.json")
    assert integers.severity == whole.severity and integers.severity.weights["danke"] == (1.0, 0.0, -2.0, 3.0)
    assert all(type(w) is float for w in integers.severity.weights["danke"])



def test_a_nul_in_the_configured_path_and_rules_check_exit_2(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(LearnedFileError, match="cannot read learned weights"):
        with_learned(tmp_path, "weights\x00.json")
    from types import SimpleNamespace

    (tmp_path / "weights.json").write_text('{"format": "hypercare-learned/1", "severity": 1}', encoding="utf-8")
    app = SimpleNamespace(config=Config(base_dir=tmp_path, rules=RulesSettings(learned="weights.json")))
    assert cmd_check(app, argparse.Namespace(file=None)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weights.json: severity: missing" in err


def test_equal_weight_files_share_one_model_and_a_new_file_is_read_afresh(tmp_path: Path) -> None:
    """The ~1 MB built-in file is parsed once per process, not by every App; other bytes, another model."""
    assert load_configured("", lambda p: p) is load_configured("", lambda p: p)
    weights = tmp_path / "weights.json"
    weights.write_bytes(BUILTIN_WEIGHTS.read_bytes())
    copy = LearnedModel.load(weights)
    assert copy is not load_configured("", lambda p: p) and copy.source == str(weights)
    weights.write_text("{", encoding="utf-8")
    with pytest.raises(LearnedFileError, match="not valid JSON"):
        LearnedModel.load(weights)


def test_the_config_key_must_be_a_string(tmp_path: Path) -> None:
    from config import ConfigError, load_config

    path = tmp_path / "hypercare.toml"
    path.write_text("[rules]\nlearned = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="learned"):
        load_config(path)


def _tiny_folder(folder: Path) -> None:
    folder.mkdir()
    mails = [("p1-a", "P1", "technical_consultant", "Alles steht, das Zahnrad klemmt"),
             ("p1-b", "P1", "technical_consultant", "Zahnrad klemmt wieder, niemand kann arbeiten"),
             ("p3-a", "P3", "crm_admin", "Bitte ein neues Feld im Kontakt anlegen"),
             ("p3-b", "P3", "crm_admin", "Kannst du ein Feld im Formular verschieben"),
             ("p4-a", "P4", "business_analyst", "Danke, eine Idee: Kanban Ansicht"),
             ("p4-b", "P4", "business_analyst", "Idee: eine Kanban Ansicht waere schoen, danke")]
    rows = ["file,severity,role"]
    for name, severity, role, body in mails:
        (folder / f"{name}.eml").write_bytes(f"From: a@customer.example\r\nSubject: Anliegen\r\n\r\n{body}\r\n"
                                             .encode())
        rows.append(f"{name}.eml,{severity},{role}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_train_round_trips_a_tiny_folder_and_the_teams_corrections(make_app, tmp_path: Path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    app = make_app(desk_config(tmp_path, db_url=db_url))
    key = report(app, ("Lagerbestand", "Kurze Frage zum Lagerbestand im Shop"))  # the desk says P3
    team_reply(app, key, "#severity P2\n#assign project_manager")  # both differ from the desk's verdict
    folder = tmp_path / "labelled"
    _tiny_folder(folder)
    out = tmp_path / "site-weights.json"
    args = argparse.Namespace(dirs=[str(folder)], out=str(out), no_corrections=False, terms=3000)
    assert cmd_train(app, args) == 0
    assert "severity from 7 mails" in app.out.getvalue() and "role from 7 mails" in app.out.getvalue()
    first = out.read_bytes()
    model = LearnedModel.load(out)
    assert stem("lagerbestand") in model.severity.weights  # learnt from the team's correction
    assert model.severity.classes == ("P1", "P2", "P3", "P4") and "project_manager" in model.role.classes
    assert cmd_train(app, args) == 0 and out.read_bytes() == first  # deterministic
    site = Classifier.from_config(Config(base_dir=tmp_path, rules=RulesSettings(learned=str(out))))
    verdict = site.classify(MailFacts("Anliegen", "Zahnrad klemmt", "b@customer.example"))
    assert verdict.severity == "P1" and verdict.rules[0].name == "learned"


def test_train_errors_are_one_line_exit_2(make_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                          capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app(desk_config(tmp_path))
    folder = tmp_path / "labelled"
    _tiny_folder(folder)
    base = dict(out=str(tmp_path / "w.json"), no_corrections=True, terms=3000)
    assert cmd_train(app, argparse.Namespace(dirs=[str(tmp_path / "missing")], **base)) == 2
    assert cmd_train(app, argparse.Namespace(dirs=[], **base)) == 2
    assert cmd_train(app, argparse.Namespace(dirs=[str(folder)], **{**base, "terms": 0})) == 2
    for module in ("sklearn", "sklearn.feature_extraction", "sklearn.linear_model"):
        monkeypatch.setitem(sys.modules, module, None)  # as if the [train] extra were not installed
    assert cmd_train(app, argparse.Namespace(dirs=[str(folder)], **base)) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 4 and "pip install 'hypercare-desk[train]'" in lines[-1]


def test_the_fast_scorer_gives_what_the_features_and_the_heads_give_on_the_labelled_mails() -> None:
    """``LearnedModel.opinion`` (one lookup per word, pairs without strings, idf folded into the rows) is
    ``LearnedModel.features`` (plain TF-IDF) + ``Head.predict``."""
    from datetime import UTC, datetime

    from classifier.mailfile import facts_from_bytes

    model = LearnedModel.load(BUILTIN_WEIGHTS)
    assert model.idf is not None  # the built-in weights are TF-IDF
    folder = Path(__file__).parent / "data" / "labelled"
    for path in sorted(folder.glob("*.eml"))[::7]:
        facts = facts_from_bytes(path.read_bytes(), datetime(2026, 11, 30, tzinfo=UTC))
        tokens = [t for _, _, t in Classifier.fields(facts)]
        features = model.features(tokens)
        severity, severity_p, probabilities = model.severity.predict(features)
        role, role_p, _ = model.role.predict(features)
        opinion = model.opinion(tokens)
        assert (opinion.severity, opinion.role) == (severity, role), path.name
        assert opinion.severity_p == pytest.approx(severity_p) and opinion.role_p == pytest.approx(role_p)
        assert opinion.p1 == pytest.approx(probabilities[0])
        assert set(opinion.terms) == set(features), path.name


def _model(severity: dict[str, list[float]], role: dict[str, list[float]] | None = None,
           idf: dict[str, float] | None = None) -> LearnedModel:
    """Weights with zero severity intercepts; with *idf*, a TF-IDF file (else presence)."""
    data: dict[str, object] = {
        **WEIGHTS, "severity": {**WEIGHTS["severity"], "intercept": [0.0, 0.0, 0.0, 0.0], "weights": severity},
        "role": {**WEIGHTS["role"], "weights": role or {}}}
    if idf is not None:
        data.update(format=TFIDF_FORMAT, idf=idf)
    return LearnedModel.from_json(data, "w.json")


def test_tf_idf_weighs_a_repeated_word_sublinearly_and_a_long_mail_no_louder() -> None:
    """(1 + ln count) x idf, L2-normalised: saying "zahnrad" five times is not five times the evidence,
    and ten harmless words beside it dilute it rather than add to it."""
    zahnrad, danke = stem("zahnrad"), stem("danke")
    model = _model({zahnrad: [2.0, 0.0, 0.0, 0.0], danke: [0.0, 0.0, 0.0, 2.0]}, idf={zahnrad: 2.0, danke: 1.0})
    once = model.opinion([["zahnrad", "danke"]])
    five = model.opinion([["zahnrad"] * 5 + ["danke"]])
    assert once.severity == "P1" and five.p1 > once.p1
    tf = 1 + math.log(5)
    norm = math.hypot(2.0 * tf, 1.0)
    expected = [2.0 * 2.0 * tf / norm, 0.0, 0.0, 2.0 * 1.0 / norm]
    assert five.p1 == pytest.approx(math.exp(expected[0]) / sum(math.exp(x) for x in expected))
    assert five.severity_evidence == (f"learned: 'zahnrad' {2.0 * 2.0 * tf / norm:+.2f}",)
    assert model.opinion([["zahnrad"]]).p1 == pytest.approx(model.opinion([["zahnrad"] * 1000]).p1)
    assert model.opinion([]).found == {} and model.opinion([[""] * 1000]).p1 == pytest.approx(0.25)


def test_a_tf_idf_file_round_trips_byte_for_byte(tmp_path: Path) -> None:
    from classifier.learned import write

    model = _model({stem("zahnrad"): [1.5, 0.0, -0.5, 0.0]}, idf={stem("zahnrad"): 3.25, "x y": 1.0})
    first = tmp_path / "a.json"
    write(model, first)
    again = LearnedModel.load(first)
    assert again.idf == model.idf and again.severity == model.severity
    write(again, tmp_path / "b.json")
    assert (tmp_path / "b.json").read_bytes() == first.read_bytes()


def test_the_fast_scorer_counts_a_term_once_and_no_pair_across_a_clause_break() -> None:
    zahnrad, klemmt = stem("zahnrad"), stem("klemmt")
    data = {**WEIGHTS, "severity": {**WEIGHTS["severity"], "weights": {zahnrad: [1.0, 0.0, 0.0, 0.0]}},
            "role": {**WEIGHTS["role"], "weights": {f"{zahnrad} {klemmt}": [0.0, 0.0, 2.0, 0.0]}}}
    model = LearnedModel.from_json(data, "w.json")
    once = model.opinion([["zahnrad", "zahnrad", "zahnrad"]])
    assert list(once.found) == [zahnrad] and once.p1 == pytest.approx(model.opinion([["zahnrad"]]).p1)
    broken = model.opinion([["das", "zahnrad", "", "klemmt"]])
    assert (zahnrad, klemmt) not in broken.found and broken.role == "crm_admin"
    joined = model.opinion([["das", "zahnrad", "klemmt"], ["zahnrad", "klemmt"]])
    assert joined.role == "technical_consultant" and joined.role_evidence == ("learned: 'zahnrad klemmt' +2.00",)
    assert model.opinion([]).severity == "P3" and model.opinion([[""] * 1000]).found == {}


def test_a_wish_is_never_paged_by_the_weights_unless_a_rule_saw_an_impact() -> None:
    from classifier.rules import DEFAULT_RULES

    model = _model({stem("kanban"): [6.0, 0.0, 0.0, 0.0]})
    classifier = Classifier.from_files([DEFAULT_RULES], learned=model)
    wish = MailFacts("Idea", "Would be great to have a Kanban view for opportunities.", "a@x.example")
    assert Classifier.from_files([DEFAULT_RULES]).classify(wish).severity == "P4"
    verdict = classifier.classify(wish)
    assert verdict.severity == "P3" and verdict.rules[0].name == "learned"  # at most P3, never a page
    outage = MailFacts("CRM is down", "Nobody can log in since 8am. Also: would be great to have a Kanban view.",
                       "a@x.example")
    assert classifier.classify(outage).severity == "P1"


def test_the_weights_have_the_last_word_on_uncertain() -> None:
    """Certain only when the weights confirm the severity and the owner (p >= 0.6) and, below P1, give
    P1 under 0.1: measured on author-out CV, the rules' own doubts marked 61 % of mail and said little."""
    zahnrad, klemmt = stem("zahnrad"), f"{stem('zahnrad')} {stem('klemmt')}"
    mail = MailFacts("Frage", "Das Zahnrad klemmt seit heute morgen", "anna@customer.example")
    owner = {klemmt: [0.0, 0.0, 3.0, 0.0]}

    def verdict(severity: list[float], role: dict[str, list[float]] = owner) -> object:
        return Classifier.from_files([], learned=_model({zahnrad: severity}, role)).classify(mail)

    sure = verdict([4.0, 0.0, 0.0, 0.0])
    assert (sure.severity, sure.role, sure.uncertain) == ("P1", "technical_consultant", False)
    unsure = verdict([1.0, 0.6, 0.0, 0.0])  # P1 leads, p ~0.41 < 0.6
    assert unsure.severity == "P1" and unsure.uncertain
    assert any(d.startswith("the learned weights are not sure of P1 (p=0.4") for d in unsure.triage.doubts)
    other_owner = verdict([4.0, 0.0, 0.0, 0.0], role={})  # the owner rests on the intercept alone
    assert other_owner.uncertain
    assert any("owner" in d and "crm_admin" in d for d in other_owner.triage.doubts)
    p3_with_a_p1_shadow = verdict([0.0, 0.0, 3.5, 0.0])  # P3 p ~0.92, P1 p ~0.03: certain
    assert p3_with_a_p1_shadow.severity == "P3" and not p3_with_a_p1_shadow.uncertain
    p3_p1_not_ruled_out = verdict([2.0, 0.0, 4.5, 0.0])  # P3 p ~0.91, P1 p ~0.07 ... below 0.1: certain
    assert not p3_p1_not_ruled_out.uncertain
    p3_p1_possible = verdict([3.0, 0.0, 5.0, 0.0])  # P3 p ~0.87, P1 p ~0.12: not ruled out
    assert p3_p1_possible.severity == "P3" and p3_p1_possible.uncertain
    assert any(d.startswith("P1 is not ruled out (learned P1 p=0.1") for d in p3_p1_possible.triage.doubts)
    rules_only = Classifier.from_files([]).classify(mail)
    assert rules_only.uncertain and rules_only.triage.doubts  # without weights the rules' doubts stand


def test_a_ceiling_holds_where_no_rule_decided_unless_the_weights_give_p1_at_least_0_6() -> None:
    """'Back to normal' caps at P3 even when no rule decided the severity (the weights used to page such
    a thank-you); a P1 the weights give at least ``p1_over_ceiling`` passes a ceiling, as when a mail names
    the test system that caused a production exposure.  Author-out CV A-P: one P1 more, one false P1 and one
    P4 above P3 fewer (at 0.8); fifteenth round, 42 groups: 0.6 gave five P1s more for three false pages."""
    zahnrad = stem("zahnrad")
    thanks = MailFacts("AW: Zahnrad", "Das Zahnrad: back up since this morning.", "a@x.example")
    assert Classifier.from_files([DEFAULT_RULES]).classify(thanks).ceiling == "P3"
    assert DEFAULT_POLICY.p1_over_ceiling == 0.6
    leaning = _model({zahnrad: [1.2, 0.0, 0.0, 0.0]})
    assert 0.4 < leaning.opinion([["zahnrad"]]).p1 < 0.6  # above p1_unsure, under p1_over_ceiling
    assert Classifier.from_files([DEFAULT_RULES], learned=leaning).classify(thanks).severity == "P3"
    likely = _model({zahnrad: [2.0, 0.0, 0.0, 0.0]})
    assert 0.6 <= likely.opinion([["zahnrad"]]).p1 < 0.8  # held at P3 until the fifteenth round
    assert Classifier.from_files([DEFAULT_RULES], learned=likely).classify(thanks).severity == "P1"
    sure_p1 = Classifier.from_files([DEFAULT_RULES], learned=_model({zahnrad: [4.0, 0.0, 0.0, 0.0]}))
    assert sure_p1.classify(thanks).severity == "P1"  # p ~0.95


def test_a_rule_p1_is_lowered_only_when_the_rules_doubt_it_and_the_weights_clearly_disagree() -> None:
    from classifier.rules import DEFAULT_RULES

    sure_p3 = _model({stem("outage"): [-4.0, 0.0, 3.0, 0.0]})
    classifier = Classifier.from_files([DEFAULT_RULES], learned=sure_p3)
    weak = MailFacts("Frage", "There was an outage this morning.", "a@x.example")  # P1 on one body word
    assert Classifier.from_files([DEFAULT_RULES]).classify(weak).severity == "P1"
    lowered = classifier.classify(weak)
    assert lowered.severity == "P3" and lowered.rules[0].name == "learned" and lowered.uncertain
    assert any(r.severity == "P1" for r in lowered.rules[1:])  # the rule's P1 is still listed, with its words
    assert any("P1 -> P3 by the learned weights" in n for n in lowered.notes)
    # A P1 the rules are sure of stands however sure the weights are ("Is the CRM down? error 503" in a storm).
    down = MailFacts("CRM is down", "Nobody can log in since 8am, the whole company is waiting. Outage!", "a@x")
    assert classifier.classify(down).severity == "P1"
    # lower_p1 0.25 since the thirteenth round (0.2 until the seventh, then 0.4; with the paragraph head lowering
    # at 0.2 beside it, where neither a paragraph nor the whole mail reads as P1; author-out CV over 40 groups:
    # P1 1559 -> 1572 of 1679 at 86.3 -> 86.5 %): a doubted rule P1 the weights give 0.22 is lowered, one they
    # give 0.27 stands.
    unsure_p3 = _model({stem("outage"): [0.1, -0.5, 1.0, -0.5]})  # P(P1) 0.22, P(P3) 0.54
    assert Classifier.from_files([DEFAULT_RULES], learned=unsure_p3).classify(weak).severity == "P3"
    leaning_p3 = _model({stem("outage"): [0.3, -0.5, 0.9, -0.5]})  # P(P1) 0.27, P(P3) 0.49
    assert Classifier.from_files([DEFAULT_RULES], learned=leaning_p3).classify(weak).severity == "P1"


def test_no_evidence_at_all_is_no_rule_and_no_learned_term() -> None:
    from classifier.evaluation import no_evidence
    from classifier.rules import DEFAULT_RULES

    model = _model({stem("zahnrad"): [4.0, 0.0, -1.0, -1.0], stem("frage"): [0.0, 0.0, 3.0, 0.0]},
                   {stem("frage"): [0.0, 3.0, 0.0, 0.0]})
    classifier = Classifier.from_files([DEFAULT_RULES], learned=model)
    nothing = classifier.classify(MailFacts("Hallo", "Bitte melden Sie sich bei mir.", "a@x.example"))
    assert nothing.severity == "P3" and no_evidence(nothing) and nothing.fallback
    known = classifier.classify(MailFacts("Frage", "Bitte melden Sie sich bei mir.", "a@x.example"))
    assert known.severity == "P3" and not no_evidence(known)  # the weights agree with P3, from a term
    assert known.rules[0].evidence == ("learned: 'frage' +3.00",) and known.role == "business_analyst"
    assert not known.fallback and "fallback-severity" in [r.name for r in known.rules]  # no rule, but evidence


@pytest.mark.parametrize("body", [
    "Since 9 the whole Hamburg office cannot do any work at all, 40 people waiting.",
    "Depuis la bascule de ce week-end, toute l'agence de Lille ne peut pas travailler.",
    "Nach der Umstellung steht der ganze Standort Wien ohne System da, das Team kann nichts tun.",
])
def test_the_shipped_classifier_pages_a_site_that_cannot_work(body: str) -> None:
    """With the built-in weights, which read "cannot do any work" as one person's P2 (p up to 0.95)."""
    verdict = Classifier.from_config(Config()).classify(MailFacts("Hilfe", body, "a@customer.example"))
    assert verdict.severity == "P1", verdict.explain()


@pytest.mark.parametrize(("subject", "body"), [
    ("Login takes very long", "Hello support,\n\nsince this morning login takes very long. I tried twice and logged "
                              "out and in again.\nCould you have a look? Record 4711 is an example.\n\nThanks\nAnna\n"),
    ("Report export to Excel fails", "Hi,\n\nreport export to excel fails for me and two colleagues. It worked last "
                                     "week.\n\nBest regards\nBen\nSales Operations\n"),
    ("Quote PDF has wrong logo", "Hello support,\n\nsince this morning the quote PDF has the wrong logo. Could you "
                                 "have a look?\n\nThanks\nCarla\n"),
    ("Login takes very long", "Hello support,\nsince this morning login takes very long. Could you have a look?\n"
                              "Thanks, Anna"),
    ("Login takes very long (17)", "Hello support,\n\nsince this morning login takes very long. I tried twice and "
                                   "logged out and in again.\nCould you have a look? Record 123456 is an example."
                                   "\n\nThanks\nUser 3\n"),
])
def test_the_shipped_classifier_pages_no_one_for_an_everyday_mail(subject: str, body: str) -> None:
    """The ingest benchmark's plain mail: after the tenth round's hard-case authors the built-in weights raised
    "since this morning login takes very long … logged out and in again" to P1 (p = 0.45), a page for one
    person's slow login; the shorter fourth mail was still paged (p = 0.47) until author F2 (classifier/README.md,
    "Tenth round"); the fifth, the benchmark's own, at p = 0.46 by the weights retrained with G2, until
    ``p1_sure_far`` (eleventh round)."""
    verdict = Classifier.from_config(Config()).classify(MailFacts(subject, body, "a@customer.example"))
    assert verdict.severity in ("P2", "P3"), verdict.explain()


def test_a_sure_p3_is_raised_to_p1_only_when_the_weights_are_clearly_sure() -> None:
    """``p1_sure_far``: the rules' sure P3 (one person's slow login, degraded) is not paged on a P1 probability
    of 0.47 that barely leads the weights' own P3 (eleventh round: "login" is a P1 word in the lock-out mail
    the weights learned from); at 0.6 it is."""
    slow = MailFacts("Login takes very long", "Since this morning login takes very long. Zahnrad.", "a@x.example")
    sure_p3 = Classifier.from_files([DEFAULT_RULES]).classify(slow)
    assert sure_p3.severity == "P3" and not sure_p3.triage.uncertain, sure_p3.explain()
    close = _model({stem("zahnrad"): [2.46, 0.0, 2.42, 0.0]})
    opinion = close.opinion([["zahnrad"]])
    assert 0.45 <= opinion.p1 < 0.5 and opinion.severity == "P1"
    assert combine(sure_p3, opinion, close).severity == "P3"
    assert combine(sure_p3, opinion, close, dataclasses.replace(DEFAULT_POLICY, p1_sure_far=None)).severity == "P1"
    clear = _model({stem("zahnrad"): [3.0, 0.0, 2.42, 0.0]})
    assert 0.5 <= clear.opinion([["zahnrad"]]).p1
    assert combine(sure_p3, clear.opinion([["zahnrad"]]), clear).severity == "P1"
