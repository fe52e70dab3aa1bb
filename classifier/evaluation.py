"""Proving a rule set: score it on labelled mail, count team overrides, replay stored tickets.

Why separate from the CLI: these are the numbers an admin looks at before a rule change
goes live; tests and the commands share them, and the commands only print.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from classifier.engine import Classifier
from classifier.learned import LEARNED_RULE
from classifier.mailfile import UnreadableMail, facts_from_bytes
from classifier.verdict import FALLBACK_SEVERITY, RuleHit, Verdict
from config import ROLES, SEVERITIES
from core.errors import UserError


class EvalError(UserError):
    """The labelled folder cannot be used; the message is one line naming what to fix."""


@dataclass
class EvalReport:
    total: int = 0
    severity_correct: int = 0
    role_correct: int = 0
    severity_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, got)
    role_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired: Counter[str] = field(default_factory=Counter)
    never_fired: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # severity fell back: no rule decided
    no_evidence: list[str] = field(default_factory=list)  # ... and the learned weights had no evidence either
    mistakes: list[tuple[str, str, str, str, str, Verdict]] = field(default_factory=list)

    @property
    def severity_accuracy(self) -> float:
        return self.severity_correct / self.total if self.total else 0.0

    @property
    def role_accuracy(self) -> float:
        return self.role_correct / self.total if self.total else 0.0

    def p1_counts(self) -> tuple[int, int, int]:
        """(P1s found, P1s labelled, mails called P1): recall and precision, from the severity confusion."""
        confusion = self.severity_confusion
        return (confusion[("P1", "P1")], sum(n for (label, _), n in confusion.items() if label == "P1"),
                sum(n for (_, got), n in confusion.items() if got == "P1"))

    def target_lines(self) -> list[str]:
        """The figures the targets are stated in: P1 recall and precision, no-evidence share, P4s raised.

        Why printed next to accuracy: a missed P1 and a false page both cost, and accuracy alone
        hides both; the same words appear in classifier/README.md's tables.
        """
        right_p1, labelled_p1, called_p1 = self.p1_counts()
        p4_raised = sum(n for (label, got), n in self.severity_confusion.items()
                        if label == "P4" and got in ("P1", "P2"))
        return [
            f"P1 recall:    {_share(right_p1, labelled_p1)}",
            f"P1 precision: {_share(right_p1, called_p1)}",
            f"no severity rule fired (fallback-severity): {_share(len(self.unmatched), self.total)}",
            f"no evidence at all (no rule, no learned evidence): {_share(len(self.no_evidence), self.total)}",
            f"P4 mails classified above P3: {p4_raised}",
        ]


def pooled(reports: dict[str, EvalReport]) -> EvalReport:
    """One report over several labelled sets (set name -> its report), file names prefixed with the set's.

    Why: a blind set has 160 mails and 40 P1s, so one mail moves its P1 recall by 2.5 points; the
    targets are judged on all sets together (classifier/README.md's pooled rows).
    """
    total = EvalReport()
    for name, report in reports.items():
        total.total += report.total
        total.severity_correct += report.severity_correct
        total.role_correct += report.role_correct
        total.severity_confusion.update(report.severity_confusion)
        total.role_confusion.update(report.role_confusion)
        total.fired.update(report.fired)
        total.unmatched += [f"{name}/{file}" for file in report.unmatched]
        total.no_evidence += [f"{name}/{file}" for file in report.no_evidence]
        total.mistakes += [(f"{name}/{m[0]}", *m[1:]) for m in report.mistakes]
    fired_anywhere = set(total.fired)
    total.never_fired = sorted({r for report in reports.values() for r in report.never_fired} - fired_anywhere)
    return total


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} ({part}/{whole})" if whole else f"- ({part}/{whole})"


def read_labels(folder: Path) -> list[tuple[str, str, str]]:
    """``labels.csv`` rows (file, severity, role), checked; EvalError names the line to fix."""
    labels = folder / "labels.csv"
    if not folder.is_dir():
        raise EvalError(f"{folder}: not a directory; give a folder of .eml files with labels.csv")
    try:
        text = labels.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalError(f"{labels}: missing; write file,severity,role lines for the mails") from None
    rows: list[tuple[str, str, str]] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or row[0].strip().startswith("#") or (number == 1 and row[0].strip() == "file"):
            continue
        if len(row) < 3:
            raise EvalError(f"{labels}:{number}: expected file,severity,role")
        name, severity, role = (c.strip() for c in row[:3])
        if severity not in SEVERITIES:
            raise EvalError(f"{labels}:{number}: severity {severity!r} unknown; use {', '.join(SEVERITIES)}")
        if role not in ROLES:
            raise EvalError(f"{labels}:{number}: role {role!r} unknown; use {', '.join(ROLES)}")
        if not (folder / name).is_file():
            raise EvalError(f"{labels}:{number}: file {name!r} not found in {folder}")
        rows.append((name, severity, role))
    if not rows:
        raise EvalError(f"{labels}: no labelled mails")
    return rows


def evaluate(classifier: Classifier, folder: Path, fallback_time: datetime,
             max_attachment_bytes: int = 10 * 1024 * 1024) -> EvalReport:
    report = EvalReport()
    for name, severity, role in read_labels(folder):
        try:
            facts = facts_from_bytes((folder / name).read_bytes(), fallback_time, max_attachment_bytes)
        except UnreadableMail as exc:
            raise EvalError(f"{folder / name}: unreadable mail ({exc}); fix or remove it from labels.csv") from None
        verdict = classifier.classify(facts)
        report.total += 1
        report.severity_correct += verdict.severity == severity
        report.role_correct += verdict.role == role
        report.severity_confusion[(severity, verdict.severity)] += 1
        report.role_confusion[(role, verdict.role)] += 1
        for hit in verdict.rules:
            report.fired[hit.name] += 1
        if any(h.name == FALLBACK_SEVERITY for h in verdict.rules):
            report.unmatched.append(name)
            if no_evidence(verdict):
                report.no_evidence.append(name)
        if verdict.severity != severity or verdict.role != role:
            report.mistakes.append((name, severity, verdict.severity, role, verdict.role, verdict))
    report.never_fired = [r.name for r in classifier.rules if report.fired[r.name] == 0]
    return report


def no_evidence(verdict: Verdict) -> bool:
    """No rule decided the severity and the learned weights did not either (classifier/README.md, "Fallback").

    The learned weights decide a mail no rule knew only when one of its terms supports their class and
    that class leads the next by ``Policy.min_margin``; otherwise the P3 is a default, nothing more.
    """
    return any(h.name == FALLBACK_SEVERITY for h in verdict.rules) and \
        not any(h.name == LEARNED_RULE and h.severity for h in verdict.rules)


def confusion_table(confusion: Counter[tuple[str, str]], labels: tuple[str, ...]) -> list[str]:
    """Rows: expected; columns: what the rules said."""
    width = max(len(x) for x in labels) + 1
    lines = [" " * width + "".join(f"{x[:14]:>15}" for x in labels) + "   <- classified as"]
    for expected in labels:
        lines.append(f"{expected:<{width}}" + "".join(f"{confusion[(expected, got)]:>15}" for got in labels))
    return lines


def format_report(report: EvalReport) -> str:
    lines = [
        f"mails: {report.total}",
        f"severity accuracy: {report.severity_accuracy:.1%} ({report.severity_correct}/{report.total})",
        f"role accuracy:     {report.role_accuracy:.1%} ({report.role_correct}/{report.total})",
        *report.target_lines(),
        "", "severity confusion (rows = label):", *confusion_table(report.severity_confusion, SEVERITIES),
        "", "role confusion (rows = label):", *confusion_table(report.role_confusion, ROLES),
        "", f"rules that never fired ({len(report.never_fired)}): {', '.join(report.never_fired) or '-'}",
        f"mails no severity rule matched ({len(report.unmatched)}): {', '.join(report.unmatched) or '-'}",
        f"mails with no evidence at all ({len(report.no_evidence)}): {', '.join(report.no_evidence) or '-'}",
    ]
    if report.mistakes:
        lines += ["", "mismatches (file: label -> classified; rules):"]
        for name, sev, got_sev, role, got_role, verdict in report.mistakes:
            rules = ", ".join(h.name for h in verdict.rules)
            lines.append(f"  {name}: {sev}/{role} -> {got_sev}/{got_role}; {rules}")
    return "\n".join(lines)


# --- what the team changed -------------------------------------------------------------------


@dataclass
class OverrideRow:
    rule: str
    fired: int = 0
    severity_overridden: int = 0
    role_overridden: int = 0
    changes: Counter[str] = field(default_factory=Counter)  # "P3->P1"


def override_stats(session: Session) -> tuple[int, int, list[OverrideRow]]:
    """(tickets classified, tickets overridden, per rule: how often the team overrode its effect)."""
    from tickets.models import Event, Ticket

    changed: dict[int, dict[str, list[dict[str, Any]]]] = {}
    kinds = ("severity_changed", "role_changed")
    for event in session.scalars(select(Event).where(Event.kind.in_(kinds)).order_by(Event.id)):
        changed.setdefault(event.ticket_id, {}).setdefault(event.kind, []).append(event.data or {})
    rows: dict[str, OverrideRow] = {}
    total = 0
    for ticket_id, classification in session.execute(select(Ticket.id, Ticket.classification)):
        total += 1
        events = changed.get(ticket_id, {})
        for data in classification or []:
            hit = RuleHit.from_json(data) if isinstance(data, dict) else None
            if hit is None:
                continue
            row = rows.setdefault(hit.name, OverrideRow(hit.name))
            row.fired += 1
            if hit.severity and events.get("severity_changed"):
                row.severity_overridden += 1
                first = events["severity_changed"][0]
                row.changes[f"{first.get('from')}->{events['severity_changed'][-1].get('to')}"] += 1
            if hit.role and events.get("role_changed"):
                row.role_overridden += 1
                first = events["role_changed"][0]
                row.changes[f"{first.get('from')}->{events['role_changed'][-1].get('to')}"] += 1
    ordered = sorted(rows.values(), key=lambda r: (-(r.severity_overridden + r.role_overridden), r.rule))
    return total, len(changed), ordered


def override_confusion(session: Session) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """(severity, role) confusion over every ticket: (what the team has now, what the rules said).

    The team's value is the label: a ticket nobody changed counts as confirmed.
    """
    from tickets.models import Ticket

    severity: Counter[tuple[str, str]] = Counter()
    role: Counter[tuple[str, str]] = Counter()
    query = select(Ticket.severity, Ticket.original_severity, Ticket.role, Ticket.original_role)
    for sev, original_sev, owner, original_role in session.execute(query):
        severity[(sev, original_sev or sev)] += 1
        role[(owner, original_role or owner)] += 1
    return severity, role


def format_overrides(total: int, overridden: int, rows: list[OverrideRow],
                     confusion: tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]] | None = None) -> str:
    lines = [f"tickets: {total}, changed by the team: {overridden}"]
    if confusion is not None and total:
        severity, role = confusion
        agreed = sum(n for (team, rules), n in severity.items() if team == rules)
        role_agreed = sum(n for (team, rules), n in role.items() if team == rules)
        lines += [
            f"severity kept by the team: {agreed / total:.1%} ({agreed}/{total}); "
            f"role kept: {role_agreed / total:.1%} ({role_agreed}/{total})",
            "", "severity (rows = the team's, columns = the rules'):", *confusion_table(severity, SEVERITIES),
            "", "role (rows = the team's, columns = the rules'):", *confusion_table(role, ROLES), "",
        ]
    if not rows:
        return "\n".join(lines)
    lines.append(f"{'rule':<28}{'fired':>6}{'severity':>10}{'role':>6}{'rate':>7}  changes")
    for r in rows:
        rate = (r.severity_overridden + r.role_overridden) / r.fired if r.fired else 0.0
        changes = ", ".join(f"{k} x{v}" for k, v in r.changes.most_common(4))
        counts = f"{r.fired:>6}{r.severity_overridden:>10}{r.role_overridden:>6}{rate:>7.0%}"
        lines.append(f"{r.rule:<28}{counts}  {changes}")
    return "\n".join(lines)


# --- replay ----------------------------------------------------------------------------------


@dataclass
class ReplayRow:
    key: str
    was: tuple[str, str]  # what the rules said when the ticket came in
    now: tuple[str, str]  # what the candidate rules say
    team: tuple[str, str]  # the ticket's current values (after any team change)
    verdict: Verdict

    @property
    def changed(self) -> bool:
        return self.was != self.now


def replay(session: Session, classifier: Classifier, since: datetime | None,
           max_attachment_bytes: int = 10 * 1024 * 1024) -> tuple[list[ReplayRow], list[str]]:
    """Re-classify the first inbound mail of each stored ticket; (rows, problems) in ticket order."""
    from tickets.models import Message, Ticket

    query = select(Ticket).order_by(Ticket.id)
    if since is not None:
        query = query.where(Ticket.created_at >= since)
    rows: list[ReplayRow] = []
    problems: list[str] = []
    for ticket in session.scalars(query):
        first = session.scalars(
            select(Message).where(Message.ticket_id == ticket.id, Message.direction == "in").order_by(Message.id)
        ).first()
        if first is None:
            problems.append(f"{ticket.key}: no inbound message stored")
            continue
        try:
            facts = facts_from_bytes(first.raw, ticket.created_at, max_attachment_bytes,
                                     received_at=first.received_at or ticket.created_at)
        except UnreadableMail as exc:
            problems.append(f"{ticket.key}: stored mail unreadable ({exc})")
            continue
        verdict = classifier.classify(facts)
        was = (ticket.original_severity or ticket.severity, ticket.original_role or ticket.role)
        rows.append(ReplayRow(ticket.key, was, (verdict.severity, verdict.role),
                              (ticket.severity, ticket.role), verdict))
    return rows, problems


def format_replay(rows: list[ReplayRow], problems: list[str]) -> str:
    changed = [r for r in rows if r.changed]
    lines = []
    for r in changed:
        agree = " (matches the team's change)" if r.now == r.team and r.team != r.was else ""
        reasons = ", ".join(h.name for h in r.verdict.rules[:3])
        lines.append(f"{r.key}: {r.was[0]}/{r.was[1]} -> {r.now[0]}/{r.now[1]}{agree}; {reasons}")
    lines += problems
    fixed = sum(1 for r in rows if r.team != r.was and r.now == r.team)
    broken = sum(1 for r in rows if r.team == r.was and r.now != r.was)
    lines.append(f"{len(rows)} tickets replayed, {len(changed)} would change: {fixed} now agree with the team's "
                 f"change, {broken} would differ from a verdict the team kept")
    return "\n".join(lines)
