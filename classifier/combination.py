"""How the learned opinion (``classifier.learned``) is folded into the rules' verdict.

How it is combined with the rules (``combine``, ``Policy``), chosen on leave-one-author-out
cross-validation (``bench/classifier_cv.py``), never on a blind set:
- a mail no rule knew gets the learned severity and role when a term supports them and the class leads
  clearly (``min_margin``); otherwise it has no evidence at all and stays the P3 fallback;
- when the rules are unsure, the learned severity and role decide; when they are sure, the learned class
  replaces theirs when a term of the mail supports it (``severity_sure`` / ``role_sure`` are 0 since the
  TF-IDF weights: they are right more often than the rules), never on the intercept alone;
- a learned P1 probability of at least ``p1_unsure`` / ``p1_sure`` raises the verdict to P1 (a P3 or P4 the
  rules were sure of needs ``p1_sure_far``: two levels up is a page on an everyday mail); a rule's P1
  is lowered only when the rules doubt it and the weights give P1 under ``lower_p1`` (the rule stays listed),
  never the matrix's P1 for a team, a site or everyone that cannot work at all (``keep_standstill``);
- a wish or a thanks the rules saw, with no impact hit beside it, is never lifted above P3;
- with a paragraph head (``ParagraphHead``, twelfth round), one paragraph that alone reads as P1 raises the
  verdict to P1, and a P1 none of whose paragraphs reads as P1 at all, nor the whole mail, is lowered to P2
  (``_paragraph_change``).

Whether the final verdict is ``uncertain`` (the owner is asked to confirm with ``#severity``, the dashboard
lists it) is decided last, by the weights: it is certain when they confirm both the severity and the owner
with p >= ``confirm`` and give P1 under ``p1_doubt`` (unless it is P1).  The old mark (the rules' doubts: a
default, one body word, conflicting hits; plus one whenever the weights overrode a sure rule) said too little:
on author-out CV it was on 61 % of mail, right 88 % of the time against 93 % for the rest; this marks 39 %,
and the rest is right 98 % / 96 % (classifier/README.md, "Sixth round").  Without weights the rules' doubts
stand.

Every change carries a note and the terms that weighed most; a doubt the weights settle is kept as
``Triage.settled``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

from classifier.learned import LEARNED_RULE, LearnedModel, Opinion
from classifier.verdict import FALLBACK_ROLE, FALLBACK_SEVERITY, RuleHit, Triage, Verdict
from config import SEVERITIES


@dataclass(frozen=True)
class Policy:
    """How the learned opinion is folded into the rules' verdict; chosen on author-out cross-validation
    (``bench/classifier_cv.py``, classifier/README.md "Measured: leave one author out"), never on a blind set.

    *p1_unsure* / *p1_sure*: the learned P1 probability that raises a verdict the rules were unsure /
    sure about to P1 (None: the weights file's ``p1_threshold``).  *severity_sure* / *role_sure*: the
    learned probability at which the learned class replaces a verdict the rules were sure about (above 1:
    never).  *min_margin*: the learned opinion is evidence when a term of the mail supports its class and
    its probability leads the next class by at least this; otherwise a mail no rule knew has **no
    evidence at all** (the fallback stays); *role_margin*: the same lead for the owner (the rules' owner
    is right less often than their severity, so the weights need less lead to replace it).  *guard_p4*:
    when the rules saw a wish or a thanks and no impact (no hit at P1/P2), the weights never lift the
    verdict above P3.  *lower_p1*: a P1 the rules were unsure about is lowered to the learned class when
    the learned P1 probability is below this (0: a rule's P1 is never lowered); *lower_p1_sure*: the same
    for a P1 the rules were sure about (0, as shipped: never; the learned class must also reach
    *severity_sure*).  *confirm* / *p1_doubt*: the final verdict is certain only when the learned class
    agrees with its severity and its owner at this probability or more, and (unless it is P1) the learned
    P1 probability is under *p1_doubt* (module docstring).  *p1_over_ceiling*: the learned P1 probability
    at which a rule's ceiling no longer holds the verdict down (``_limits``).  *keep_standstill*: a P1 the
    matrix gives because a team, a site or everyone cannot work at all (hit ``stoppage``, the reach named)
    is never lowered (nor, by the paragraph head, one for the system down: hit ``outage``): the weights
    know words, not the reach ("the whole Hamburg office cannot do any work" read as a P2 at p=0.95, the
    words of one person's bad morning).  *p1_sure_far*: the learned P1
    probability that raises a P3 or P4 the rules were sure of (None: ``p1_sure``); eleventh round: the
    retrained weights gave "since this morning login takes very long" P1 at p=0.46, because "login" is a
    P1 word in the lock-out mail they learned from, and the rules' sure P3 (degraded, one person) became a page.
    *p1_paragraph* / *lower_p1_paragraph* (twelfth round; only with a paragraph head): a verdict is raised to
    P1 when one paragraph alone reads as P1 with at least this probability (None: never), where a ceiling,
    a wish or a fixed severity allows it; a P1 is lowered to P2 when neither a paragraph nor the whole mail
    reads as P1 even at this probability, unless it is a standstill (*keep_standstill*) or a rule fixed it.
    Thirteenth round (author-out CV, 40 groups, new authors): *lower_p1* 0.4 -> 0.25 and *lower_p1_paragraph*
    0.05 -> 0.2 with the whole mail's reading beside the paragraphs' gave P1 1559 -> 1572 of 1679 at 86.3 ->
    86.5 % precision (one false page fewer): the paragraph head takes back the false pages the whole-mail
    lowering took, and lets fewer real P1s go.  Fifteenth round (42 groups): *p1_over_ceiling* 0.8 -> 0.6
    gave P1 1664 -> 1669 of 1779 at 86.7 -> 86.6 %, severity and role unchanged: a thank-you or "workaround"
    ceiling had held five P1s at P3 or P4 (an SSO outage, a role that sees the finance data) whose weights
    said P1 at 0.60-0.73; 0.65 finds three of them, 0.7 two, 0.5 and 0.55 one P1 more than 0.6.
    """

    p1_unsure: float | None = 0.4
    p1_sure: float | None = 0.45
    severity_sure: float = 0.0
    role_sure: float = 0.0
    min_margin: float = 0.1
    role_margin: float = 0.0
    guard_p4: bool = True
    lower_p1: float = 0.25
    lower_p1_sure: float = 0.0
    confirm: float = 0.6
    p1_doubt: float = 0.1
    p1_over_ceiling: float = 0.6
    keep_standstill: bool = True
    p1_sure_far: float | None = 0.5
    p1_paragraph: float | None = 0.6
    lower_p1_paragraph: float = 0.2


DEFAULT_POLICY = Policy()
# What is hit when nobody can work (``_standstill``): people stopped; for the paragraph head also the system
# itself down.  The outage joined in the thirteenth round: "CRM down? I get an error 503 when I open it" (one
# report of the rehearsal's storm) has no paragraph the head reads as P1 (p=0.01: short question mails are
# mostly one person's trouble) and was lowered to P2 although the rules saw the system down for everyone
# (author-out CV: P1 recall +1, 4 false P1s more).  The whole-mail weights still lower a doubted outage P1
# ("There was an outage this morning.", one body word): keeping those too cost 11 more false P1s for 4 found.
STANDSTILL_HITS = frozenset({"stoppage"})
PARAGRAPH_STANDSTILL_HITS = STANDSTILL_HITS | {"outage"}
_LEVEL = {s: i for i, s in enumerate(SEVERITIES)}


def _standstill(verdict: Verdict, hits: frozenset[str] = STANDSTILL_HITS) -> bool:
    """The matrix's P1 for a team, a site or everyone that cannot work at all (``Policy.keep_standstill``);
    with *hits* ``PARAGRAPH_STANDSTILL_HITS``, also for the system down."""
    triage = verdict.triage
    return (triage.matrix_severity == "P1" and triage.hit is not None and triage.hit.value in hits
            and triage.scope.value in ("team", "all"))


def _has_evidence(opinion: Opinion, column: int, probability: float, second: float, margin: float) -> bool:
    return probability - second >= margin and any(row[column] > 0 for row in opinion.found.values())


def _limits(verdict: Verdict, policy: Policy, no_severity_rule: bool, p1: float) -> tuple[str, str]:
    """(the most severe, the mildest) severity the weights may give this verdict.

    A wish or a thanks the rules saw, with no impact hit beside it, is never paged for (at most P3).
    What a rule said explicitly holds: a ceiling ("a workaround exists": at most P3, a test system,
    "back to normal") is not exceeded, also when no rule decided the severity, unless the weights give P1
    at least ``p1_over_ceiling`` ("the sandbox webhook posts every IBAN to a public URL" names a test system
    but is a production exposure; "SSO down after the lunch release, thanks for the quick look" is an
    outage); a fixed severity or a floor (a site's "SAP errors are P2") is never undercut, also when the
    matrix gave that severity anyway (``Verdict.floor``).
    """
    cap, floor = SEVERITIES[0], SEVERITIES[-1]
    if policy.guard_p4:
        cells = [h.severity for h in verdict.rules if h.severity and h.name not in (FALLBACK_SEVERITY, LEARNED_RULE)]
        if "P4" in cells and not any(c in ("P1", "P2") for c in cells):
            cap = "P3"
    ceiling_holds = p1 < policy.p1_over_ceiling
    if verdict.ceiling is not None and _LEVEL[verdict.ceiling] > _LEVEL[cap] and ceiling_holds:
        cap = verdict.ceiling  # also when no rule decided the severity: "back to normal, thanks" is no page
    severity, matrix = verdict.severity, verdict.triage.matrix_severity
    if not no_severity_rule and matrix is not None and _LEVEL[severity] > _LEVEL[matrix] and ceiling_holds:
        cap = severity if _LEVEL[severity] > _LEVEL[cap] else cap  # the rules' ceiling lowered the matrix's cell
    if verdict.floor is not None:  # a rule's floor or fixed severity, also where the matrix agreed with it;
        floor = max(verdict.floor, severity, key=_LEVEL.__getitem__)  # a ceiling the rules applied over it stands
    if _LEVEL[cap] > _LEVEL[floor]:  # crossed (one site rule with a fixed P4 and a floor at P2 looks like a wish):
        cap = floor  # the floor is never more severe than the rules' verdict, so the weights cannot go below it
    return cap, floor


def combine(verdict: Verdict, opinion: Opinion, model: LearnedModel,
            policy: Policy = DEFAULT_POLICY) -> Verdict:
    """The rules' verdict with the learned opinion folded in, as measured (``Policy``, module docstring)."""
    unsure = verdict.triage.uncertain
    p1_raise = (policy.p1_unsure if unsure else policy.p1_sure) or model.p1_threshold
    if not unsure and _no_change(verdict, opinion, policy, p1_raise):
        return _settled(verdict, opinion, policy)  # the rules were sure and the weights do not differ enough
    named = {h.name for h in verdict.rules}
    no_severity_rule, no_role_rule = FALLBACK_SEVERITY in named, FALLBACK_ROLE in named
    severity, role = verdict.severity, verdict.role
    notes = list(verdict.notes)
    doubts = list(verdict.triage.doubts)
    decided_severity = decided_role = False
    severity_evidence = _has_evidence(opinion, opinion.severity_column, opinion.severity_p,
                                      opinion.severity_second, policy.min_margin)
    cap, floor = _limits(verdict, policy, no_severity_rule, opinion.p1)

    allowed = functools.partial(_within, cap=cap, floor=floor)
    wanted = severity
    if no_severity_rule:
        if severity_evidence:
            wanted = opinion.severity
            decided_severity = True  # even when it agrees with the default: the mail has evidence now
    elif unsure or (opinion.severity_p >= policy.severity_sure and severity_evidence):
        wanted = opinion.severity  # a sure rule gives way only to a term of the mail, never to the intercept
    lower_below = 0.0 if policy.keep_standstill and _standstill(verdict) else (
        policy.lower_p1 if unsure else policy.lower_p1_sure)
    if severity == "P1" and wanted != "P1" and opinion.p1 >= lower_below:
        wanted = "P1"  # a rule's P1 stands (a weak "CRM Ausfall" is still an outage) unless the policy lowers it
    wanted = allowed(wanted) if wanted != severity else wanted
    if wanted != severity or decided_severity:
        why = "the rules were unsure" if unsure else f"p >= {policy.severity_sure:.2f}"
        if no_severity_rule:
            why = "no rule recognised what is hit"
        change = f"{severity} -> {wanted}" if wanted != severity else wanted
        notes.append(f"severity {change} by the learned weights (p={opinion.severity_p:.2f}; {why})")
        if not unsure:
            doubts.append(f"the learned weights say {wanted} (p={opinion.severity_p:.2f}) "
                          f"where the rules said {severity}")
        severity, decided_severity = wanted, True
    if opinion.p1 >= p1_raise and severity != "P1" and allowed("P1") == "P1" and (
            unsure or policy.p1_sure_far is None or severity not in ("P3", "P4") or opinion.p1 >= policy.p1_sure_far):
        notes.append(f"raised {severity} -> P1 by the learned weights (P1 p={opinion.p1:.2f})")
        if not unsure:
            doubts.append(f"the learned weights say P1 (p={opinion.p1:.2f}) where the rules said {severity}")
        severity, decided_severity = "P1", True
    # A paragraph is read apart from the wish or the thanks beside it ("Thanks! Also: the resellers see all our
    # customers' accounts"), so the wish guard does not hold it; a rule's ceiling and a fixed severity do.
    unguarded, _ = _limits(verdict, _without_wish_guard(policy), no_severity_rule, opinion.p1)
    by_paragraph = _paragraph_change(verdict, severity, opinion.paragraph_p1, opinion.p1, policy,
                                     functools.partial(_within, cap=unguarded, floor=floor))
    paragraph_evidence: tuple[str, ...] = ()
    if by_paragraph is not None:
        severity, note, doubt = by_paragraph
        notes.append(note)
        doubts.append(doubt)
        decided_severity, paragraph_evidence = True, model.paragraph_evidence(opinion.paragraph_words)
    role_evidence = _has_evidence(opinion, opinion.split + opinion.role_column, opinion.role_p,
                                  opinion.role_second, policy.role_margin)
    if (no_role_rule and role_evidence) or (opinion.role != role and (
            unsure or (opinion.role_p >= policy.role_sure and role_evidence))):
        change = f"{role} -> {opinion.role}" if opinion.role != role else role
        notes.append(f"role {change} by the learned weights (p={opinion.role_p:.2f})")
        role, decided_role = opinion.role, True
    if not (decided_severity or decided_role):
        return _settled(verdict, opinion, policy)
    columns = ((opinion.severity_column,) if decided_severity else ()) + \
        ((opinion.split + opinion.role_column,) if decided_role else ())
    evidence = opinion.evidence(*columns) + paragraph_evidence
    hit = RuleHit(LEARNED_RULE, model.description, evidence, severity if decided_severity else None,
                  role if decided_role else None)
    triage = Triage(verdict.triage.scope, verdict.triage.hit, verdict.triage.matrix_severity, tuple(doubts))
    # Still a fallback only where neither a rule nor the weights had evidence (README "Fallback").
    fallback = (no_severity_rule and not decided_severity) or (no_role_rule and not decided_role)
    return _settled(replace(verdict, severity=severity, role=role, rules=(hit, *verdict.rules), notes=tuple(notes),
                            triage=triage, fallback=fallback), opinion, policy)


@functools.cache
def _without_wish_guard(policy: Policy) -> Policy:
    """*policy* without ``guard_p4``, as the paragraph head reads it; made once per policy, not per mail."""
    return replace(policy, guard_p4=False)


def _within(level: str, cap: str, floor: str) -> str:
    """*level* held between the most severe (*cap*) and the mildest (*floor*) severity allowed (``_limits``)."""
    if _LEVEL[level] > _LEVEL[floor]:
        return floor
    return level if _LEVEL[level] >= _LEVEL[cap] else cap


def _no_change(verdict: Verdict, opinion: Opinion, policy: Policy, p1_raise: float) -> bool:
    """Whether the weights cannot change a sure verdict: no probability reaches a threshold of ``Policy``."""
    return (opinion.p1 < p1_raise and opinion.severity_p < policy.severity_sure and opinion.role_p < policy.role_sure
            and (verdict.severity != "P1" or opinion.p1 >= policy.lower_p1_sure)
            and _paragraph_change(verdict, verdict.severity, opinion.paragraph_p1, opinion.p1, policy, str) is None)


def _paragraph_change(verdict: Verdict, severity: str, paragraph: float | None, whole: float, policy: Policy,
                      allowed: Callable[[str], str]) -> tuple[str, str, str] | None:
    """(new severity, note, doubt) when one paragraph alone decides about P1 (``Policy.p1_paragraph``).

    Why beside the whole-mail P1 probability: that one follows the many harmless lines of a long mail; a
    paragraph head trained on the most P1-like paragraph of each P1 mail finds the one serious paragraph,
    and a P1 none of whose paragraphs reads as P1 at all is mostly alarm words on a small problem
    (classifier/README.md, "Twelfth round").  Lowered only when the whole mail (*whole*, its P1 probability)
    does not read as P1 either (thirteenth round): the head is trained for the most serious of several
    paragraphs, so it reads a short mail low ("Hundreds of contacts were deleted overnight, data loss!": 0.04,
    the whole mail 0.21).  *allowed*: the severity limits without the wish guard.
    """
    if paragraph is None:
        return None
    if severity != "P1" and policy.p1_paragraph is not None and paragraph >= policy.p1_paragraph \
            and allowed("P1") == "P1":
        return ("P1", f"raised {severity} -> P1 by the learned paragraph weights: one paragraph reads as P1 "
                f"(p={paragraph:.2f})", f"one paragraph reads as P1 (p={paragraph:.2f}) where the rest said {severity}")
    if severity == "P1" and max(paragraph, whole) < policy.lower_p1_paragraph and allowed("P2") == "P2" \
            and not (policy.keep_standstill and _standstill(verdict, PARAGRAPH_STANDSTILL_HITS)):
        return ("P2", f"lowered P1 -> P2 by the learned paragraph weights: no paragraph reads as P1 "
                f"(p={paragraph:.2f}), nor the whole mail (p={whole:.2f})",
                f"no paragraph reads as P1 (p={paragraph:.2f}), nor the whole mail (p={whole:.2f})")
    return None


def _settled(verdict: Verdict, opinion: Opinion, policy: Policy) -> Verdict:
    """The final word on ``uncertain`` (module docstring): the weights confirm the verdict, or say why not.

    A doubt the weights settle is kept as ``settled``, so ``show`` and the notices still tell what the
    rules lacked.
    """
    open_doubts = []
    if opinion.severity != verdict.severity:
        open_doubts.append(f"the learned weights say {opinion.severity} (p={opinion.severity_p:.2f}), "
                           f"not {verdict.severity}")
    elif opinion.severity_p < policy.confirm:
        open_doubts.append(f"the learned weights are not sure of {verdict.severity} (p={opinion.severity_p:.2f})")
    if opinion.role != verdict.role:
        open_doubts.append(f"the learned weights give the owner {opinion.role} (p={opinion.role_p:.2f}), "
                           f"not {verdict.role}")
    elif opinion.role_p < policy.confirm:
        open_doubts.append(f"the learned weights are not sure of the owner {verdict.role} (p={opinion.role_p:.2f})")
    if verdict.severity != "P1" and opinion.p1 >= policy.p1_doubt:
        open_doubts.append(f"P1 is not ruled out (learned P1 p={opinion.p1:.2f})")
    doubts = verdict.triage.doubts
    if open_doubts:
        return replace(verdict, triage=replace(verdict.triage, doubts=(*doubts, *open_doubts)))
    if not doubts:
        return verdict
    sure = f" (severity p={opinion.severity_p:.2f}, owner p={opinion.role_p:.2f})"
    return replace(verdict, triage=replace(verdict.triage, doubts=(), settled=tuple(d + sure for d in doubts)))
