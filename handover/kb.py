"""``hypercare kb draft``: knowledge-base article drafts from resolved tickets, one per incident or topic.

Why an incident first: its reports are one problem by the desk's own judgement (or the team's
``#link``), so they make one article with the team's one resolution, titled in neutral words
(``tickets.public_text.neutral_title``); an incident with a single resolved report is just a ticket.
Why drafts by topic word and not by classifier rule: a rule says how a ticket was judged
(``fallback-severity`` gathered unrelated tickets into one "article"), a topic says what it is
about.  The topic of a ticket is the most frequent meaningful word its subject shares with other
resolved tickets (``tickets.topics``); a ticket that shares none is listed in the index as a single
ticket, never made into an article of its own.  Each draft gathers: the symptom as users described it
(their first mail, quote-stripped), the resolution the team gave (``Ticket.resolution``, else
the last public answer), how often it occurred, and links to the tickets.  A draft is for the
next support team to read, so quoted history and personal data (mail addresses, phone numbers,
the names of reporters and team members) are removed before anything is written.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from config import Config
from notifier.labels import role_label
from tickets.lifecycle import first_inbound
from tickets.models import CLOSED_STATUSES, Ticket
from tickets.public_text import names_of, neutral_title, redact
from tickets.topics import term_counts, topic_of

UNCLASSIFIED = "unclassified"
MAX_EXAMPLES = 5
AUTOMATIC_KINDS = ("outbox:ack", "outbox:escalation", "outbox:assignment", "outbox:confirmation", "outbox:resolved")

_QUOTE_HEADER = re.compile(
    r"^\s*(?:on .{0,200} wrote:|am .{0,200} schrieb .{0,200}:|le .{0,200} a écrit\s*:|-{2,}\s*original message\s*-{2,}"
    r"|-{2,}\s*ursprüngliche nachricht\s*-{2,}|from:\s.+|von:\s.+)\s*$", re.IGNORECASE)
_SIGNATURE = re.compile(r"^(?:-- ?|—|best regards,?|kind regards,?|regards,?|thanks,?|thank you,?|cheers,?"
                        r"|mit freundlichen grüßen,?|viele grüße,?|cordialement,?)\s*$", re.IGNORECASE)


@dataclass
class Topic:
    rule: str  # the topic word ("invoice") or the incident key ("INC-3"); names the file
    description: str = ""  # the article's title
    tickets: list[dict[str, Any]] = field(default_factory=list)  # {"key", "subject", "symptom", "resolution", ...}
    incident: str = ""  # the incident key when the article is one incident's reports

    @property
    def slug(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.rule.lower()).strip("-") or UNCLASSIFIED
        return f"incident-{slug}" if self.incident else slug


def strip_quotes(text: str) -> str:
    """Keep what the writer wrote: stop at a quote header or signature, drop ``>`` lines."""
    kept: list[str] = []
    for line in text.splitlines():
        if _QUOTE_HEADER.match(line) or _SIGNATURE.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


def collect_topics(session: Session, config: Config, since: datetime | None = None) -> list[Topic]:
    """Resolved and closed tickets grouped by incident (two or more resolved reports), then by topic word,
    largest first; the tickets that share neither with another are one last ``Topic`` named UNCLASSIFIED
    (listed, never an article)."""
    query = (select(Ticket).where(Ticket.status.in_(CLOSED_STATUSES)).order_by(Ticket.number)
             .options(selectinload(Ticket.messages), selectinload(Ticket.participants),
                      selectinload(Ticket.incident)))
    if since is not None:
        query = query.where(Ticket.resolved_at >= since)
    team_names = tuple(n for m in config.team for n in (m.name, *m.name.split()))
    tickets = list(session.scalars(query))
    per_incident = Counter(t.incident.key for t in tickets if t.incident is not None)
    in_incident = {t.id for t in tickets if t.incident is not None and per_incident[t.incident.key] >= 2}
    ranking = term_counts(t.subject for t in tickets if t.id not in in_incident)
    topics: dict[str, Topic] = {}
    for ticket in tickets:
        if ticket.id in in_incident:
            assert ticket.incident is not None
            topic = topics.setdefault(f"incident:{ticket.incident.key}",
                                      Topic(ticket.incident.key, incident=ticket.incident.key))
        else:
            word = topic_of(ticket.subject, ranking) or UNCLASSIFIED
            topic = topics.setdefault(word, Topic(word))
        writers = [m.from_name for m in ticket.messages if m.direction == "in"]  # not our own "CRM ... Support"
        names = (*team_names, ticket.reporter_name, *ticket.reporter_name.split(),
                 *writers, *(n for w in writers for n in w.split()))
        symptom = _symptom(ticket, config)
        resolution = _resolution(ticket, config)
        topic.tickets.append({
            "key": ticket.key, "subject": redact(ticket.subject, names), "severity": ticket.severity,
            "symptom": redact(symptom, names), "resolution": redact(resolution, names) if resolution else "",
            "resolved_at": ticket.resolved_at, "created_at": ticket.created_at,
        })
    everyone = names_of((m.name, m.email) for m in config.team)
    for topic in topics.values():
        if topic.incident:
            reports = [t for t in tickets if t.id in in_incident and t.incident and t.incident.key == topic.incident]
            people = everyone | names_of((t.reporter_name, t.reporter) for t in reports)
            title = neutral_title([t.subject for t in reports], people, role_label(reports[0].role))
            topic.description = f"Incident {topic.incident}: {title}"
        elif topic.rule != UNCLASSIFIED:
            topic.description = f"{topic.rule.capitalize()}: {topic.tickets[0]['subject']}"
        else:
            topic.description = "Single tickets (no shared topic)"
    ordered = sorted((t for t in topics.values() if t.rule != UNCLASSIFIED), key=lambda t: (-len(t.tickets), t.rule))
    return ordered + ([topics[UNCLASSIFIED]] if UNCLASSIFIED in topics else [])


def articles(topics: list[Topic]) -> list[Topic]:
    """The topics that become an article: never the bucket of single tickets."""
    return [t for t in topics if t.rule != UNCLASSIFIED]


def _symptom(ticket: Ticket, config: Config) -> str:
    first = first_inbound(ticket)
    return strip_quotes(first.body or first.body_full) if first is not None else ""


def _resolution(ticket: Ticket, config: Config) -> str:
    if ticket.resolution and ticket.resolution.strip():
        return strip_quotes(ticket.resolution)
    answers = [m for m in ticket.messages if m.direction == "out" and m.source not in AUTOMATIC_KINDS]
    team = [m for m in ticket.messages if m.direction == "in" and config.team_member(m.from_addr) is not None
            and not m.body.lstrip().startswith("#")]
    last = max([*answers, *team], key=lambda m: (m.received_at, m.id), default=None)
    return strip_quotes(last.body) if last is not None else ""


def render_topic(topic: Topic, ticket_url: str) -> str:
    """One Markdown draft: title, how often, symptom(s), resolution(s), tickets."""
    n = len(topic.tickets)
    first = min(t["created_at"] for t in topic.tickets)
    last = max(t["created_at"] for t in topic.tickets)
    severities = sorted({t["severity"] for t in topic.tickets})
    lines = [
        f"# {topic.description or topic.rule}",
        "",
        f"*Draft generated from {n} resolved ticket{'s' if n != 1 else ''} "
        + (f"(incident {topic.incident}: {n} reports of one problem). " if topic.incident
           else f"(topic word `{topic.rule}`). ")
        + "Review before publishing.*",
        "",
        f"**How often:** {n} time{'s' if n != 1 else ''} between {first:%Y-%m-%d} and {last:%Y-%m-%d}; "
        f"severity {', '.join(severities)}.",
        "",
        "## Symptom",
        "",
        "As users described it:",
        "",
    ]
    for t in topic.tickets[:MAX_EXAMPLES]:
        lines.append(f"- **{_md(t['subject'])}**")
        if t["symptom"]:
            lines.extend(_blockquote(t["symptom"]))
    lines += ["", "## Resolution", ""]
    resolutions = [t for t in topic.tickets if t["resolution"]]
    if not resolutions:
        lines.append("_No resolution text was recorded; see the tickets._")
    seen: set[str] = set()
    for t in reversed(resolutions):  # newest first: the latest fix is the most likely to still apply
        if t["resolution"] in seen:
            continue
        seen.add(t["resolution"])
        lines.append(f"From {t['key']}:")
        lines.append("")
        lines.extend(_blockquote(t["resolution"]))
        lines.append("")
    lines += ["## Tickets", ""]
    for t in topic.tickets:
        lines.append(f"- [{t['key']}]({ticket_url.format(key=t['key'])}) {_md(t['subject'])} ({t['severity']})")
    return "\n".join(lines).rstrip() + "\n"


def render_index(topics: list[Topic], ticket_url: str = "{key}") -> str:
    lines = ["# Knowledge-base drafts", "", "| Topic | Tickets | File |", "|---|---:|---|"]
    for topic in articles(topics):
        title, link = _md(topic.description or topic.rule), f"[{topic.slug}.md]({topic.slug}.md)"
        lines.append(f"| {title} | {len(topic.tickets)} | {link} |")
    single = [t for t in topics if t.rule == UNCLASSIFIED]
    if single:
        lines += ["", "## Single tickets (no shared topic, no article)", ""]
        lines += [f"- [{t['key']}]({ticket_url.format(key=t['key'])}) {_md(t['subject'])}" for t in single[0].tickets]
    return "\n".join(lines) + "\n"


def _blockquote(text: str) -> list[str]:
    # Raw HTML in what users wrote must not come alive in a Markdown renderer.
    safe = text.replace("&", "&amp;").replace("<", "&lt;")
    return [f"  > {line}" if line.strip() else "  >" for line in safe.strip().splitlines()[:20]]


def _md(text: str) -> str:
    """Neutralise Markdown/HTML in one-line user text (subjects): it is shown, never interpreted."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", text.replace("\n", " "))
