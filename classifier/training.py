"""``hypercare rules train``: learned weights from labelled folders and the team's corrections.

Why corrections count: every ``#severity``/``#assign`` a team member sends is a label for a real
mail, kept with the subject and text the classifier read (``tickets.corrections``).  Training on
them lets the desk learn the site's own words without anyone writing a rule; the result is a
weights file a person can read and point ``[rules] learned`` at (or not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from classifier.engine import Classifier
from classifier.evaluation import EvalError, read_labels
from classifier.facts import MailFacts
from classifier.fitting import EXPORT_TERMS, Example, train
from classifier.learned import LearnedFileError, term_counts, write
from classifier.mailfile import UnreadableMail, facts_from_bytes
from classifier.paragraphs import paragraphs
from config import ROLES, SEVERITIES


def terms_of(facts: MailFacts) -> dict[str, int]:
    """The terms the runtime scores for this mail (the same fields and words), counted."""
    return term_counts(tokens for _, _, tokens in Classifier.fields(facts))


@dataclass
class TrainingSet:
    """Severity and role examples, and per severity example its paragraphs' terms (the paragraph P1 head)."""

    severity: list[Example] = field(default_factory=list)
    role: list[Example] = field(default_factory=list)
    paragraphs: list[list[dict[str, int]]] = field(default_factory=list)

    def add(self, facts: MailFacts, severity: str | None, role: str | None) -> None:
        fields = Classifier.fields(facts)
        terms = term_counts(tokens for _, _, tokens in fields)
        if severity is not None:
            self.severity.append((terms, severity))
            self.paragraphs.append([term_counts((words,)) for words in paragraphs(fields)])
        if role is not None:
            self.role.append((terms, role))


def examples_from_folder(folder: Path, now: datetime, max_attachment_bytes: int, into: TrainingSet) -> None:
    """Add the labelled mails of *folder* to *into*; EvalError names what to fix."""
    for name, label_severity, label_role in read_labels(folder):
        try:
            facts = facts_from_bytes((folder / name).read_bytes(), now, max_attachment_bytes)
        except UnreadableMail as exc:
            raise EvalError(f"{folder / name}: unreadable mail ({exc}); fix or remove it from labels.csv") from None
        into.add(facts, label_severity, label_role)


def examples_from_corrections(session: Session, into: TrainingSet) -> None:
    """Add the team's last word per ticket and kind: #severity gives a severity example, #assign a role one."""
    from tickets.models import Correction

    latest: dict[tuple[int, str], Correction] = {}
    for row in session.scalars(select(Correction).order_by(Correction.id)):
        latest[(row.ticket_id, row.kind)] = row
    for (_, kind), row in sorted(latest.items()):
        evidence = row.evidence if isinstance(row.evidence, dict) else {}
        subject, text = evidence.get("subject"), evidence.get("text")
        facts = MailFacts(subject=subject if isinstance(subject, str) else "",
                          body=text if isinstance(text, str) else "", sender="")
        if kind == "severity" and row.new in SEVERITIES:
            into.add(facts, row.new, None)
        elif kind == "role" and row.new in ROLES:
            into.add(facts, None, row.new)


def fit_and_write(examples: TrainingSet, out: Path, terms: int = EXPORT_TERMS) -> str:
    """Fit, write *out* deterministically, and return the one-line summary."""
    severity, role = examples.severity, examples.role
    if not severity or not role:
        raise LearnedFileError("training: no labelled mail; give labelled folders (DIR with labels.csv) "
                               "or let the team correct verdicts with #severity/#assign")
    model = train(severity, role, terms=terms, source=str(out), paragraphs=examples.paragraphs)
    try:
        write(model, out)
    except OSError as exc:
        raise LearnedFileError(f"{out}: cannot write the weights ({exc.strerror or exc}); "
                               "choose another --out") from None
    return (f"wrote {out}: severity from {len(severity)} mails ({len(model.severity.weights)} terms), "
            f"role from {len(role)} mails ({len(model.role.weights)} terms); set [rules] learned = \"{out}\"")
