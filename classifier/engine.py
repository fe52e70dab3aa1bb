"""The classifier: compiled rules in, one explainable verdict per mail out.

Why this shape: the rules are compiled once (one word trie for every keyword, one
combined pattern for every regex, an index from each word to the rules that need
it), so classifying a mail costs one pass over its words plus the few rules whose
words actually occur.  The decision model (``decide``) is a small pure function that
classifier/README.md documents line by line, so two admins reading a rule file
agree on what it does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from classifier.combination import combine
from classifier.conditions import MatchContext, Outcome, sender_keys
from classifier.facts import MailFacts
from classifier.forwarded import REPLY_SUBJECT, bare_subject, dequoted
from classifier.learned import LearnedModel, load_configured
from classifier.matrix import EMPTY, SCOPES, Matrix
from classifier.paragraphs import body_words, paragraphs
from classifier.regexes import RegexScanner
from classifier.rules import DEFAULT_RULES, Rule, RuleFileError, RuleSet, read_rule_files
from classifier.text import Negation, PhraseHit, tokenize
from classifier.verdict import FALLBACK_ROLE, FALLBACK_SEVERITY, Axis, RuleHit, Triage, Verdict
from config import SEVERITIES

if TYPE_CHECKING:
    from config import Config

FALLBACK = ("P3", "crm_admin")
MAX_EVIDENCE = 6
WEAK_SCORE = 2  # a P1/P2 decided on less (one body keyword) is marked uncertain
_RANK = {s: i for i, s in enumerate(SEVERITIES)}  # P1 = 0 is the most severe
# Quoted history the parser may have left: cut at the first reply header, drop "> " lines.
_REPLY_HEADER = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*(?:original message|urspr\u00fcngliche nachricht|message d'origine)[ \t]*-{2,}"
    r"|on\b[^\n]{0,200}\bwrote:|am\b[^\n]{0,200}\bschrieb\b[^\n]{0,100}:|le\b[^\n]{0,200}\ba \u00e9crit ?:"
    r"|(?:from|von|de) ?:[^\n]*\n[ \t]*(?:sent|date|gesendet|envoy\u00e9) ?:)",
    re.IGNORECASE | re.MULTILINE,
)


class _Fired(NamedTuple):
    """A rule that held for the mail, with its outcome (a named tuple: one is built per fired rule)."""

    rule: Rule
    outcome: Outcome

    def hit(self, cell: str | None = None) -> RuleHit:
        """The stored record; *cell*: the matrix severity of this rule's hit at the mail's scope."""
        r = self.rule
        return RuleHit(r.name, r.description, self.outcome.evidence[:MAX_EVIDENCE], r.severity_effect or cell, r.role)


def unquoted(body: str) -> str:
    """The body without quoted history: guards against mail whose quotes the parser missed."""
    if "wrote" in body or "----" in body or ":" in body:
        found = _REPLY_HEADER.search(body)
        if found:
            body = body[: found.start()]
    if ">" in body:
        body = "\n".join(line for line in body.split("\n") if not line.lstrip().startswith(">"))
    return body


class Classifier:
    """Severity P1-P4 and owner role for a mail, with the rules that fired and why."""

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        timezone: str | ZoneInfo = "UTC",
        business_start: time = time(9, 0),
        business_end: time = time(17, 0),
        business_days: Iterable[int] = range(5),
        learned: LearnedModel | None = None,
    ) -> None:
        self.learned = learned
        try:
            self.tz = timezone if isinstance(timezone, ZoneInfo) else ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise RuleFileError(f"timezone {timezone!r} unknown; use a name like Europe/Berlin") from None
        self.business_start, self.business_end = business_start, business_end
        self.business_days = frozenset(business_days)
        self.ruleset = ruleset
        self.rules = ruleset.rules
        self._matcher = ruleset.builder.matcher
        n = ruleset.negation
        self._negation = Negation(n.words, n.exceptions, n.window)
        self._regexes = RegexScanner(ruleset.builder.regexes, self._negation) if ruleset.builder.regexes else None
        # Rules indexed by what triggers them, one index per kind keyed by the bare id (phrase id, regex id,
        # sender key): no ("phrase", id) tuple is built per hit of a mail.
        by_kind: dict[str, dict[object, list[int]]] = {"phrase": {}, "regex": {}, "sender": {}}
        always: list[int] = []
        for rule in self.rules:
            triggers = rule.condition.triggers()
            if triggers is None:
                always.append(rule.index)
                continue
            for kind, key in triggers:
                by_kind[kind].setdefault(key, []).append(rule.index)
        self._always = tuple(always)
        self._by_phrase, self._by_regex, self._by_sender = (
            {key: tuple(indexes) for key, indexes in by_kind[kind].items()} for kind in ("phrase", "regex", "sender"))
        # The headers any rule reads: MailFacts for intake need only these (MailFacts.from_parsed).
        self.header_names: frozenset[str] = frozenset().union(*(r.condition.header_names() for r in self.rules))

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_files(
        cls,
        paths: Iterable[str | Path],
        *,
        timezone: str | ZoneInfo = "UTC",
        business_start: time = time(9, 0),
        business_end: time = time(17, 0),
        business_days: Iterable[int] = range(5),
        learned: LearnedModel | None = None,
    ) -> Classifier:
        """Rules from *paths* in order (later files extend earlier ones); RuleFileError if unusable."""
        return cls(read_rule_files(paths), timezone=timezone, business_start=business_start,
                   business_end=business_end, business_days=business_days, learned=learned)

    @classmethod
    def from_config(cls, config: Config, rules_file: str | Path | None = None) -> Classifier:
        """Built-in rules, extended or replaced by ``[rules] file`` (or *rules_file*, a candidate),
        with the learned weights of ``[rules] learned`` (classifier/learned.py)."""
        return cls.from_files(rule_paths(config, rules_file), timezone=config.hypercare.timezone,
                              business_start=config.hypercare.business_start,
                              business_end=config.hypercare.business_end,
                              business_days=config.hypercare.business_days,
                              learned=load_configured(config.rules.learned, config.path))

    # --- classification --------------------------------------------------------------------

    def classify(self, facts: MailFacts) -> Verdict:
        fields, body_parts = self._read(facts, self.learned is not None and self.learned.paragraph is not None)
        ctx = self.context(facts, fields)
        candidates = set(self._always)
        for by_id, found in ((self._by_phrase, ctx.phrase_hits), (self._by_regex, ctx.regex_hits)):
            for key in found:
                indexes = by_id.get(key)
                if indexes is not None:
                    candidates.update(indexes)
        if facts.sender and self._by_sender:
            for _, key in sender_keys(facts.sender):
                candidates.update(self._by_sender.get(key, ()))
        fired: list[_Fired] = []
        rules = self.rules
        for index in sorted(candidates):
            rule = rules[index]
            outcome = rule.condition.check(ctx)
            if outcome is not None and outcome.score >= rule.min_score:
                fired.append(_Fired(rule, outcome))
        verdict = decide(fired, self.ruleset.matrix)
        if self.learned is None:
            return verdict
        learned = self.learned
        paragraph_words = paragraphs(fields, body_parts) if learned.paragraph is not None else None
        return combine(verdict, learned.opinion((tokens for _, _, tokens in fields), paragraph_words), learned)

    @staticmethod
    def fields(facts: MailFacts) -> list[tuple[str, str, list[str]]]:
        """(field, text, words) of what the classifier reads: the subject unless a reply's, the unquoted body;
        of a forward, its own subject and the whole body (``classifier.forwarded``)."""
        return Classifier._read(facts)[0]

    @staticmethod
    def _read(facts: MailFacts, by_paragraph: bool = True) -> tuple[list[tuple[str, str, list[str]]],
                                                                   list[list[str]] | None]:
        """``fields``, and the body's paragraphs' words (``paragraphs.body_words``; None: no body, or not
        *by_paragraph*: without a paragraph head the body is tokenised whole, which is cheaper; a blank line
        is a clause break either way)."""
        if facts.forwarded:
            subject, body = bare_subject(facts.subject), dequoted(facts.body)
        else:
            subject = "" if REPLY_SUBJECT.match(facts.subject) else facts.subject
            body = unquoted(facts.body)
        fields = [("subject", subject, tokenize(subject))] if subject else []
        body_parts = None
        if body and by_paragraph:
            words, body_parts = body_words(body)
            fields.append(("body", body, words))
        elif body:
            fields.append(("body", body, tokenize(body)))
        return fields, body_parts

    def context(self, facts: MailFacts, fields: list[tuple[str, str, list[str]]] | None = None) -> MatchContext:
        """Run the compiled matchers over the mail once; conditions read only this."""
        phrase_hits: dict[int, list[PhraseHit]] = {}
        regex_hits: dict[int, list[tuple[str, str, bool]]] = {}
        for field, text, tokens in self.fields(facts) if fields is None else fields:
            self._matcher.collect(tokens, field, self._negation, phrase_hits)
            if self._regexes is not None:
                self._regexes.scan(text, field, regex_hits)
        local = facts.received_at.astimezone(self.tz)
        inside = local.weekday() in self.business_days and (
            self.business_start <= local.time() < self.business_end
        )
        return MatchContext(facts, phrase_hits, regex_hits, local, inside)


def rule_paths(config: Config, rules_file: str | Path | None = None) -> list[Path]:
    """Which files are in force: the built-in rules, then the site file (or only it, in replace mode)."""
    chosen = rules_file if rules_file is not None else config.rules.file
    if not chosen:
        return [DEFAULT_RULES]
    path = Path(chosen) if rules_file is not None else config.path(str(chosen))
    return [path] if config.rules.mode == "replace" else [DEFAULT_RULES, path]


def decide(fired: list[_Fired], matrix: Matrix = EMPTY) -> Verdict:  # noqa: C901 - the model, step by step as documented
    """The decision model (README "Decision model"):

    1. who is affected: a fired scope-only rule saying ``one`` (narrowing words), else the widest
       ``scope`` among fired rules, else the matrix's default;
    2. what is hit: among fired ``hit`` rules the one the matrix makes most severe at that scope
       (ties: the earlier matrix row, then the rule first in the file); its cell is the severity;
    3. a fired ``severity`` rule (site files) decides instead when it is more severe;
    4. floors raise it to at least their level, then ceilings cap it (a ceiling wins over a floor), except a
       ceiling whose ``ceiling_spares`` names the deciding hit (a thanks does not close a data exposure);
    5. role: the deciding rule's role if it names one, else the fired rule with a role and the
       highest score (ties: first in the file);
    6. nothing decided: P3 / crm_admin, with a fallback entry saying so;
    7. uncertain: no severity or role evidence, one weak word deciding a P1/P2, or hits that
       disagree by two levels or more.
    """
    notes: list[str] = []
    decisive: list[_Fired] = []
    # Words that narrow the reach ("only me", "colleagues are fine") beat every wider hint.
    narrowing = [f for f in fired if f.rule.scope == SCOPES[0] and not f.rule.hit]
    scope_rule = narrowing[0] if narrowing else max(
        (f for f in fired if f.rule.scope), default=None,
        key=lambda f: (SCOPES.index(f.rule.scope or "one"), f.outcome.score, -f.rule.index))
    if scope_rule is not None:
        scope = Axis(str(scope_rule.rule.scope), scope_rule.rule.name, scope_rule.outcome.evidence[:MAX_EVIDENCE])
    else:
        scope = Axis(matrix.default_scope)
    hitters = [f for f in fired if f.rule.hit in matrix.rows]

    def cell(f: _Fired) -> str:
        return matrix.severity(str(f.rule.hit), scope.value)

    hit_rule = min(hitters, default=None,
                   key=lambda f: (_RANK[cell(f)], matrix.precedence(str(f.rule.hit)), f.rule.index))
    matrix_severity = cell(hit_rule) if hit_rule is not None else None
    setters = [f for f in fired if f.rule.severity]
    severity_rule = min(setters, key=lambda f: (_RANK[f.rule.severity or "P4"], f.rule.index), default=None)
    if severity_rule is not None and (matrix_severity is None
                                      or _RANK[str(severity_rule.rule.severity)] < _RANK[matrix_severity]):
        hit_rule_deciding = False
    else:
        hit_rule_deciding = hit_rule is not None
    deciding: _Fired | None = hit_rule if hit_rule_deciding else severity_rule
    if hit_rule_deciding and hit_rule is not None and matrix_severity is not None:
        severity = matrix_severity
        decisive.append(hit_rule)
        notes.append(f"severity {severity} from the matrix: {hit_rule.rule.hit} x {scope.value} "
                     f"(rule {hit_rule.rule.name}" + (f", scope from rule {scope.rule})" if scope.rule else ")"))
    elif severity_rule is not None:
        severity = str(severity_rule.rule.severity)
        decisive.append(severity_rule)
        notes.append(f"severity {severity} from rule {severity_rule.rule.name}")
    else:
        severity = FALLBACK[0]
    changed_by_limit = False
    for f in fired:
        floor = f.rule.severity_floor
        if floor and _RANK[floor] < _RANK[severity]:
            notes.append(f"raised {severity} -> {floor} by rule {f.rule.name} (floor)")
            severity, changed_by_limit = floor, True
    ceilings = []
    spared = hit_rule.rule.hit if hit_rule_deciding and hit_rule is not None else None
    for f in fired:
        ceiling = f.rule.severity_ceiling
        if ceiling and spared in f.rule.ceiling_spares:
            notes.append(f"rule {f.rule.name} does not lower {spared} (ceiling_spares)")
            continue
        if ceiling:
            ceilings.append(ceiling)
        if ceiling and _RANK[ceiling] > _RANK[severity]:
            notes.append(f"lowered {severity} -> {ceiling} by rule {f.rule.name} (ceiling)")
            severity, changed_by_limit = ceiling, True
    severity_fallback = deciding is None and not changed_by_limit

    if deciding is not None and deciding.rule.role:
        role_rule: _Fired | None = deciding
    else:
        with_role = [f for f in fired if f.rule.role]
        role_rule = max(with_role, key=lambda f: (f.outcome.score, -f.rule.index), default=None)
    if role_rule is not None:
        role = str(role_rule.rule.role)
        if role_rule is not deciding:
            decisive.append(role_rule)
        notes.append(f"role {role} from rule {role_rule.rule.name}")
    else:
        role = FALLBACK[1]
    if scope_rule is not None and all(scope_rule is not d for d in decisive):
        decisive.append(scope_rule)

    chosen = {id(d) for d in decisive}
    ordered = decisive + [f for f in fired if id(f) not in chosen]
    hits = [f.hit(cell(f) if f.rule.hit in matrix.rows else None) for f in ordered]
    if severity_fallback:
        text = "No rule decided the severity; P3 by default"
        hits.append(RuleHit(FALLBACK_SEVERITY, text, (), FALLBACK[0], None))
        notes.append("severity P3 by default: no rule decided it")
    if role_rule is None:
        text = "No rule named an owner; crm_admin by default"
        hits.append(RuleHit(FALLBACK_ROLE, text, (), None, FALLBACK[1]))
        notes.append("role crm_admin by default: no rule named one")
    hit_axis = (Axis(str(hit_rule.rule.hit), hit_rule.rule.name, hit_rule.outcome.evidence[:MAX_EVIDENCE])
                if hit_rule is not None else None)
    doubts = _doubts(severity, deciding, severity_fallback, role_rule is None, hitters, cell)
    triage = Triage(scope, hit_axis, matrix_severity, doubts)
    tags = tuple(dict.fromkeys(t for f in fired for t in f.rule.tags))
    floors = [level for f in fired for level in (f.rule.severity_floor, f.rule.severity) if level]
    return Verdict(severity, role, tuple(hits), tags, severity_fallback or role_rule is None, tuple(notes), triage,
                   max(ceilings, key=_RANK.__getitem__, default=None), min(floors, key=_RANK.__getitem__, default=None))


def _doubts(severity: str, deciding: _Fired | None, severity_fallback: bool, role_fallback: bool,
            hitters: list[_Fired], cell: Callable[[_Fired], str]) -> tuple[str, ...]:
    """Why a verdict is uncertain (empty: it is not); README "Knows when it is unsure"."""
    doubts: list[str] = []
    if severity_fallback:
        doubts.append("no rule recognised what is hit: the severity is a default")
    if role_fallback:
        doubts.append("no rule recognised the topic: the owner is a default")
    if deciding is not None and _RANK[severity] <= _RANK["P2"] and deciding.outcome.score < WEAK_SCORE:
        words = "; ".join(deciding.outcome.evidence[:2])
        doubts.append(f"{severity} rests on one word in the body ({deciding.rule.name}: {words})")
    if hitters:
        ranks = {f.rule.hit: _RANK[cell(f)] for f in hitters}
        worst, mildest = min(ranks.values()), max(ranks.values())
        if mildest - worst >= 2:
            a = next(h for h, r in ranks.items() if r == worst)
            b = next(h for h, r in ranks.items() if r == mildest)
            doubts.append(f"conflicting evidence: {a} ({SEVERITIES[worst]}) and {b} ({SEVERITIES[mildest]})")
    return tuple(doubts)
