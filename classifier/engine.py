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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from classifier.conditions import MatchContext, Outcome, Trigger, sender_keys
from classifier.facts import MailFacts
from classifier.regexes import RegexScanner
from classifier.rules import DEFAULT_RULES, Rule, RuleFileError, RuleSet, read_rule_files
from classifier.text import Negation, PhraseHit, tokenize
from classifier.verdict import FALLBACK_ROLE, FALLBACK_SEVERITY, RuleHit, Verdict
from config import SEVERITIES

if TYPE_CHECKING:
    from config import Config

FALLBACK = ("P3", "crm_admin")
MAX_EVIDENCE = 6
_RANK = {s: i for i, s in enumerate(SEVERITIES)}  # P1 = 0 is the most severe
# Quoted history the parser may have left: cut at the first reply header, drop "> " lines.
_REPLY_HEADER = re.compile(
    r"^[ \t]*(?:-{2,}[ \t]*(?:original message|urspr\u00fcngliche nachricht|message d'origine)[ \t]*-{2,}"
    r"|on\b[^\n]{0,200}\bwrote:|am\b[^\n]{0,200}\bschrieb\b[^\n]{0,100}:|le\b[^\n]{0,200}\ba \u00e9crit ?:"
    r"|(?:from|von|de) ?:[^\n]*\n[ \t]*(?:sent|date|gesendet|envoy\u00e9) ?:)",
    re.IGNORECASE | re.MULTILINE,
)
# "Re:"/"AW:"/"SV:" subjects repeat an earlier mail's subject: quoted history, not this mail's words.
_REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|antw|sv|vs|ref|r\u00e9f)\s*(?:\[\d+\]|\(\d+\))?\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class _Fired:
    rule: Rule
    outcome: Outcome

    def hit(self) -> RuleHit:
        r = self.rule
        return RuleHit(r.name, r.description, self.outcome.evidence[:MAX_EVIDENCE], r.severity_effect, r.role)


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
    ) -> None:
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
        by_trigger: dict[Trigger, list[int]] = {}
        always: list[int] = []
        for rule in self.rules:
            triggers = rule.condition.triggers()
            if triggers is None:
                always.append(rule.index)
                continue
            for trigger in triggers:
                by_trigger.setdefault(trigger, []).append(rule.index)
        self._by_trigger = {k: tuple(v) for k, v in by_trigger.items()}
        self._always = tuple(always)
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
    ) -> Classifier:
        """Rules from *paths* in order (later files extend earlier ones); RuleFileError if unusable."""
        return cls(read_rule_files(paths), timezone=timezone, business_start=business_start,
                   business_end=business_end, business_days=business_days)

    @classmethod
    def from_config(cls, config: Config, rules_file: str | Path | None = None) -> Classifier:
        """Built-in rules, extended or replaced by ``[rules] file`` (or *rules_file*, a candidate)."""
        return cls.from_files(rule_paths(config, rules_file), timezone=config.hypercare.timezone,
                              business_start=config.hypercare.business_start,
                              business_end=config.hypercare.business_end,
                              business_days=config.hypercare.business_days)

    # --- classification --------------------------------------------------------------------

    def classify(self, facts: MailFacts) -> Verdict:
        ctx = self.context(facts)
        candidates = set(self._always)
        index = self._by_trigger
        for pid in ctx.phrase_hits:
            candidates.update(index.get(("phrase", pid), ()))
        for rid in ctx.regex_hits:
            candidates.update(index.get(("regex", rid), ()))
        if facts.sender:
            for key in sender_keys(facts.sender):
                candidates.update(index.get(key, ()))
        fired: list[_Fired] = []
        for index in sorted(candidates):
            rule = self.rules[index]
            outcome = rule.condition.check(ctx)
            if outcome is not None and outcome.score >= rule.min_score:
                fired.append(_Fired(rule, outcome))
        return decide(fired)

    def context(self, facts: MailFacts) -> MatchContext:
        """Run the compiled matchers over the mail once; conditions read only this."""
        body = unquoted(facts.body)
        subject = "" if _REPLY_SUBJECT.match(facts.subject) else facts.subject
        phrase_hits: dict[int, list[PhraseHit]] = {}
        regex_hits: dict[int, list[tuple[str, str, bool]]] = {}
        for field, text in (("subject", subject), ("body", body)):
            if not text:
                continue
            for hit in self._matcher.find(tokenize(text), field, self._negation):
                phrase_hits.setdefault(hit.phrase, []).append(hit)
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


def decide(fired: list[_Fired]) -> Verdict:
    """The decision model (README "Decision model"):

    1. severity: the most severe ``severity`` among fired rules; ties go to the rule first in the file;
    2. floors raise it to at least their level, then ceilings cap it (a ceiling wins over a floor);
    3. role: the deciding severity rule's role if it names one, else the fired rule with a role and the
       highest score (ties: first in the file);
    4. nothing decided: P3 / crm_admin, with a fallback entry saying so.
    """
    notes: list[str] = []
    decisive: list[_Fired] = []
    setters = [f for f in fired if f.rule.severity]
    severity_rule = min(setters, key=lambda f: (_RANK[f.rule.severity or "P4"], f.rule.index), default=None)
    if severity_rule is not None:
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
    for f in fired:
        ceiling = f.rule.severity_ceiling
        if ceiling and _RANK[ceiling] > _RANK[severity]:
            notes.append(f"lowered {severity} -> {ceiling} by rule {f.rule.name} (ceiling)")
            severity, changed_by_limit = ceiling, True
    severity_fallback = severity_rule is None and not changed_by_limit

    if severity_rule is not None and severity_rule.rule.role:
        role_rule: _Fired | None = severity_rule
    else:
        with_role = [f for f in fired if f.rule.role]
        role_rule = max(with_role, key=lambda f: (f.outcome.score, -f.rule.index), default=None)
    if role_rule is not None:
        role = str(role_rule.rule.role)
        if role_rule is not severity_rule:
            decisive.append(role_rule)
        notes.append(f"role {role} from rule {role_rule.rule.name}")
    else:
        role = FALLBACK[1]

    ordered = decisive + [f for f in fired if all(f is not d for d in decisive)]
    hits = [f.hit() for f in ordered]
    if severity_fallback:
        text = "No rule decided the severity; P3 by default"
        hits.append(RuleHit(FALLBACK_SEVERITY, text, (), FALLBACK[0], None))
        notes.append("severity P3 by default: no rule decided it")
    if role_rule is None:
        text = "No rule named an owner; crm_admin by default"
        hits.append(RuleHit(FALLBACK_ROLE, text, (), None, FALLBACK[1]))
        notes.append("role crm_admin by default: no rule named one")
    tags = tuple(dict.fromkeys(t for f in fired for t in f.rule.tags))
    return Verdict(severity, role, tuple(hits), tags, severity_fallback or role_rule is None, tuple(notes))
