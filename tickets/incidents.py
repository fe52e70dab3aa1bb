"""Incidents: several reports of one problem become one incident (issue 14).

Why grouping in the domain, at creation: an outage reported by eight people in eight
minutes became eight tickets and seven P1 pages.  A new ticket joins an open incident (or
starts one with the ticket it matches) when it arrives within ``[incidents] window_minutes`` of
a lone earlier report, or while the incident is open (not resolved), and it

* was decided by the same classifier rule (the first rule of the verdict, not a fallback),
* has the same topic (the owner role the classifier chose), and
* shares at least ``min_shared_terms`` (default 2; a P1: ``min_shared_terms_p1``, default 1, since
  an outage reported in three languages may share only "CRM") significant words of subject and body
  with it (stop words of English, German and French left out; error codes count).

Each of the three is a fact a person can check, so the reason is stored with the link
(``incident_linked`` event: rule, role, shared terms, minutes after the earlier report) and
``show`` prints it.  The team corrects it by reply: ``#link HC-n`` / ``#merge HC-n`` join a
ticket to HC-n's incident, ``#unlink`` takes it out (``replies.command_effects``).

Pure domain: no mail is sent here.  The acknowledgement ("known issue"), the page once per
incident and the resolution of every linked ticket are the notifier's and the replies'
business; they ask ``is_follow_up`` and ``open_reports``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import and_, func, inspect, or_, select
from sqlalchemy.orm import Session

from config import Config
from tickets.lifecycle import first_inbound, record_event
from tickets.models import OPEN_STATUSES, Incident, IncidentUpdate, Message, Ticket
from tickets.response_clock import record_first_response
from tickets.sla import SlaPolicy
from tickets.store import Store, next_number

INCIDENT_COUNTER = "incident"
MEMBERSHIP_CHANGES = [0]  # reports linked or taken out by the team in this process (public_text.IncidentPeople)
LINKED = "incident_linked"
UNLINKED = "incident_unlinked"
MAX_TERMS = 60  # significant terms kept per report: enough for a mail's gist, bounded for a megabyte body
_WORD = re.compile(r"[^\W\d_]{3,}|\d{3,}")
# Function words of the three languages the desk answers in; everything else may carry meaning.
STOP_WORDS = frozenset("""
the and for are but not you all any can had her was one our out has have him his how its may new now
see two way who did get got let say she too use this that with from they will would there their what
when which your been were into than then them these some could about after again also just only other
over such very more most same since still while where here does doing please thanks thank hello dear
regards best kind everyone anyone nobody someone since today morning yesterday
der die das und ist nicht ein eine einer eines dem den des ich sie wir ihr mit von auf für aus bei
seit sich auch noch nur schon wie was wer wenn dann kann können konnte keine kein mehr sehr bitte danke
hallo liebe lieber grüße gruß freundlichen heute morgen gestern alle allen niemand jemand unser unsere
les des une est pas que qui pour dans par sur avec mais plus depuis tout tous toute toutes nous vous
ils elles leur sont ont été cette ces son ses aux bonjour merci cordialement madame monsieur aujourd hui
matin personne peut pouvons
""".split())


@dataclass(frozen=True)
class LinkReason:
    """Why a report joined an incident: each part checkable by a person."""

    rule: str
    role: str
    shared_terms: tuple[str, ...]
    minutes_after: float
    earlier: str  # the report it matched (key)
    by: str = "similarity"  # similarity | #link | #merge

    def sentence(self) -> str:
        if self.by != "similarity":
            return f"linked by the team ({self.by} {self.earlier})"
        terms = ", ".join(self.shared_terms) or "-"
        return (f"same classifier rule {self.rule!r} and topic {self.role}, shared terms: {terms}; "
                f"{self.minutes_after:.0f} min after {self.earlier}")

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "role": self.role, "shared_terms": list(self.shared_terms),
                "minutes_after": round(self.minutes_after, 1), "earlier": self.earlier, "by": self.by}


def significant_terms(*texts: str) -> tuple[str, ...]:
    """The distinct significant words of *texts*, in order of appearance (at most ``MAX_TERMS``)."""
    seen: dict[str, None] = {}
    for text in texts:
        for match in _WORD.finditer((text or "")[:20_000].lower()):
            word = match.group()
            if word not in STOP_WORDS and len(word) <= 40:
                seen.setdefault(word, None)
                if len(seen) >= MAX_TERMS:
                    return tuple(seen)
    return tuple(seen)


def deciding_rule(ticket: Ticket) -> str | None:
    """The classifier rule that decided the ticket's severity; None for a fallback verdict."""
    return rule_of(str(hit.get("name", "")) if isinstance(hit, dict) else "" for hit in ticket.classification or [])


def rule_of(names: Iterable[str]) -> str | None:
    """The first rule name that is neither a topic rule nor a fallback (None when a fallback decided).

    The learned weights' entry (``learned``, first when they changed the verdict) names no kind of
    problem: two unrelated mails the weights judged are not one incident, so it is passed over.
    """
    for name in names:
        if not name or name.startswith("fallback"):
            return None
        if not name.startswith("topic-") and name != "learned":
            return name
    return None


class NewReport(Protocol):
    """A new ticket as column values (``intake.opening.OpenedTicket``; tickets never imports intake)."""

    ticket: dict[str, Any]
    verdict: Any  # classifier.Verdict: ``rules`` with ``name``


def grouping_facts(subject: str, body: str, classification: Iterable[Any]) -> dict[str, str]:
    """The ``incident_rule`` and ``incident_terms`` columns of a new ticket (``intake.opening`` fills them):
    what ``find_match`` compares, computed once from the opening mail instead of once per later report."""
    rule = rule_of(str(hit.get("name", "")) if isinstance(hit, dict) else "" for hit in classification or [])
    return {"incident_rule": rule or "", "incident_terms": " ".join(significant_terms(subject, body))}


def _stored(rule: str | None, terms: str | None) -> tuple[str | None, tuple[str, ...]] | None:
    """The stored (rule, terms) of a ticket, or None when it was opened without them (before revision 0006)."""
    if rule is None or terms is None:
        return None
    return rule or None, tuple(terms.split())


def terms_of(ticket: Ticket, message: Message | None = None) -> tuple[str, ...]:
    stored = _stored(ticket.incident_rule, ticket.incident_terms) if message is None else None
    if stored is not None:
        return stored[1]
    first = message if message is not None else first_inbound(ticket)
    return significant_terms(ticket.subject, first.body if first is not None else "")


def unflushed_reports(incident: Incident) -> list[Ticket] | None:
    """The reports of *incident* that are new in this session (not stored yet), when the stored rows plus
    these are all its reports; None when only ``incident.tickets`` can tell: the incident is new itself,
    or a stored ticket has changes not flushed (a ``#link``, ``#unlink``, ``#ack`` in this session).

    Why: a later report of a storm asked "am I the first?", "has anyone answered?", "how many are we?"
    by walking every report of the incident; with this the same questions are one indexed query each."""
    state = inspect(incident)
    session = state.session
    if session is None or state.key is None:
        return None
    if any(isinstance(obj, Ticket) and _membership_changed(obj) for obj in session.dirty):
        return None
    return [obj for obj in session.new if isinstance(obj, Ticket) and inspect(obj).dict.get("incident") is incident]


def _membership_changed(ticket: Ticket) -> bool:
    """True when a stored *ticket* joined or left an incident, or got its first response, in memory only."""
    attrs = inspect(ticket).attrs
    return any(getattr(attrs, name).history.has_changes()
               for name in ("incident", "incident_id", "first_response_at", "created_at", "status"))


def _session(incident: Incident) -> Session:
    session = inspect(incident).session
    assert session is not None
    return session


def is_follow_up(ticket: Ticket) -> bool:
    """True when the ticket joined an incident someone else reported first (no page, "known issue")."""
    incident = ticket.incident
    if incident is None:
        return False
    pending = unflushed_reports(incident)
    if pending is not None and all(t is ticket for t in pending):
        # One query: a stored report that came before (by arrival, then id; a ticket not flushed yet is the
        # newest of its instant). Not flushed: the hooks run before the opener's one flush.
        at = ticket.created_at
        earlier = (Ticket.created_at <= at if ticket.id is None else
                   and_(Ticket.id != ticket.id, or_(Ticket.created_at < at,
                                                    and_(Ticket.created_at == at, Ticket.id < ticket.id))))
        session = _session(incident)
        with session.no_autoflush:
            return session.scalar(select(Ticket.id).where(Ticket.incident_id == incident.id, earlier)
                                  .limit(1)) is not None
    # By arrival, then id; a ticket not flushed yet (no id) is the newest of its instant.
    first = min(incident.tickets, key=lambda t: (t.created_at, t.id if t.id is not None else float("inf")),
                default=None)
    return first is not None and first is not ticket


def answered_before(incident: Incident, ticket: Ticket) -> bool:
    """True when a report of *incident* other than *ticket* has its first response (the team is on it)."""
    pending = unflushed_reports(incident)
    if pending is None:
        return any(t.first_response_at is not None for t in incident.tickets if t is not ticket)
    if any(t is not ticket and t.first_response_at is not None for t in pending):
        return True
    other = Ticket.id != ticket.id if ticket.id is not None else Ticket.id.is_not(None)
    session = _session(incident)
    with session.no_autoflush:
        return session.scalar(select(Ticket.id).where(Ticket.incident_id == incident.id, other,
                                                      Ticket.first_response_at.is_not(None)).limit(1)) is not None


def open_reports(incident: Incident) -> list[Ticket]:
    return [t for t in incident.tickets if t.status in OPEN_STATUSES]


def latest_update(incident: Incident | None) -> IncidentUpdate | None:
    if incident is None:
        return None
    updates = [u for u in incident.updates if u.kind == "update"]
    return updates[-1] if updates else None


_PENDING = "incidents.batch_accepted"  # Session.info key: the reports batch_accepts accepted in that session


@dataclass(frozen=True)
class _Planned:
    """A report not stored yet, as much of a ``Ticket`` as ``find_match`` reads of the new report."""

    role: str
    severity: str


class IncidentGrouper:
    """The ``TicketOpener.on_opened`` hook that links a new report to the incident it belongs to.

    Its batch form (``intake.batch_store``): a new report that joins an incident (``find_match`` finds
    its match in the batch's session, or it matches a report accepted earlier in the same batch) is
    refused, so it goes the per-message way where ``on_new_ticket`` decides; the others are stored in
    the batch and remembered.  The match is asked only of a report that *may* join (an open incident or
    a report within the window with the same rule and role), kept in memory (``_recent``) and reloaded
    from the database every ``RELOAD`` of rehearsed time, so a second instance's reports are seen within
    seconds.
    """

    RELOAD = timedelta(seconds=10)

    def __init__(self, config: Config, sla: SlaPolicy, store: Store | None = None) -> None:
        self.config = config
        self.settings = config.incidents
        self.sla = sla
        self.store = store
        self._recent: dict[tuple[str, str], datetime] = {}  # (rule, role) -> latest report
        self._open: set[tuple[str, str]] = set()  # (rule, role) of open incidents
        self._loaded_at: datetime | None = None

    # --- the batch form ----------------------------------------------------------------------

    def batch_accepts(self, session: Session, opened: NewReport) -> bool:
        """False for a report that joins an incident: what ``on_new_ticket`` would find in *session*
        (``find_match``), or a report of this batch accepted before it and not written yet that it
        matches by the same rule; every other report is accepted and remembered."""
        if not self.settings.enabled:
            return True
        rule = rule_of(hit.name for hit in opened.verdict.rules)
        if rule is None:
            return True
        now = opened.ticket["created_at"]
        self._reload(now)
        key = (rule, str(opened.ticket["role"]))
        terms_text = opened.ticket.get("incident_terms")
        if terms_text is None:
            return False  # planned without its grouping facts: the per-message path decides
        terms = tuple(str(terms_text).split())
        # This session's reports accepted so far (whether written yet or not): a later report of the same
        # batch that matches one goes the per-message way, after the run holding it was written.
        pending: dict[tuple[str, str], list[tuple[str, ...]]] = session.info.setdefault(_PENDING, {})
        last = self._recent.get(key)
        if key in self._open or (last is not None and now - last <= self._window):
            # It may join: ask what the per-message path asks (stand-in: only role and severity are read).
            report = cast(Ticket, _Planned(key[1], str(opened.ticket["severity"])))
            if any(self._shared(report, terms, earlier) is not None for earlier in pending.get(key, ())):
                return False
            if self.find_match(session, report, rule, terms, now) is not None:
                return False
        # Remembered now, not when the batch is written: the next report of this batch must see it.
        self._remember(rule, key[1], now)
        pending.setdefault(key, []).append(terms)
        return True

    @staticmethod
    def batch_rows(session: Session, opened: Iterable[NewReport], now: datetime) -> tuple[()]:
        return ()  # an accepted report joins nothing: no rows (it was remembered by batch_accepts)

    @property
    def _window(self) -> timedelta:
        return timedelta(minutes=self.settings.window_minutes)

    def _remember(self, rule: str, role: str, at: datetime) -> None:
        key = (rule, role)
        self._recent[key] = max(at, self._recent.get(key, at))

    def _reload(self, now: datetime) -> None:
        if self.store is None or (self._loaded_at is not None and timedelta(0) <= now - self._loaded_at
                                  < self.RELOAD):
            return
        self._loaded_at = now
        with self.store.read() as session:
            recent = (Ticket.status.in_(OPEN_STATUSES), Ticket.created_at >= now - self._window)
            # The latest report per stored (rule, role), counted by the database: a storm's reports are not
            # loaded every RELOAD; tickets opened before revision 0006 are read as objects.
            for rule, role, latest in session.execute(
                    select(Ticket.incident_rule, Ticket.role, func.max(Ticket.created_at))
                    .where(*recent, Ticket.incident_rule.is_not(None), Ticket.incident_terms.is_not(None))
                    .group_by(Ticket.incident_rule, Ticket.role)):
                if rule:
                    self._remember(rule, role, latest)
            for ticket in session.scalars(select(Ticket).where(
                    *recent, or_(Ticket.incident_rule.is_(None), Ticket.incident_terms.is_(None)))):
                rule = deciding_rule(ticket)
                if rule is not None:
                    self._remember(rule, ticket.role, ticket.created_at)
            self._open = {(i.rule, i.role) for i in session.scalars(select(Incident).where(Incident.status == "open"))}

    # --- one report --------------------------------------------------------------------------

    def on_new_ticket(self, session: Session, ticket: Ticket, request: Message, now: datetime) -> None:
        if not self.settings.enabled:
            return
        rule = deciding_rule(ticket)
        if rule is None:
            return
        self._remember(rule, ticket.role, now)
        terms = terms_of(ticket, request)
        match = self.find_match(session, ticket, rule, terms, now)
        if match is None:
            return
        self._open.add((rule, ticket.role))
        earlier, reason = match
        # No autoflush: the new ticket stays pending until the opener's one flush (flushed here, the link
        # below would make it a changed stored ticket, which the questions of ``unflushed_reports`` avoid).
        with session.no_autoflush:
            incident = earlier.incident or start_incident(session, earlier, now, rule=rule,
                                                          terms=terms_of(earlier))
            join(session, incident, ticket, reason, now)
            if answered_before(incident, ticket):
                # The team is already on it: the "known issue" acknowledgement is this report's response.
                record_first_response(self.sla, ticket, (), now)

    FIRST_PAGE = 8  # candidates read first: in a storm the newest report of the topic matches
    CANDIDATES = 200

    def find_match(self, session: Session, ticket: Ticket, rule: str, terms: tuple[str, ...],
                   now: datetime) -> tuple[Ticket, LinkReason] | None:
        since = now - timedelta(minutes=self.settings.window_minutes)
        # No autoflush: the new ticket is still pending and is stored by the opener's one flush.
        with session.no_autoflush:
            # Lone reports within the window, and the reports of incidents still open (an outage that
            # is being worked on collects its late reports too, however long it lasts).
            in_open_incident = Ticket.incident_id.in_(select(Incident.id).where(Incident.status == "open"))
            where = (Ticket.status.in_(OPEN_STATUSES), Ticket.created_at <= now, Ticket.role == ticket.role,
                     or_(Ticket.created_at >= since, in_open_incident))
            order = (Ticket.created_at.desc(), Ticket.id.desc())
            if any(isinstance(obj, (Ticket, Incident)) for obj in session.dirty):
                # Stored tickets or incidents changed in this session and not flushed: judge the objects.
                candidates = list(session.scalars(select(Ticket).where(*where).order_by(*order)
                                                  .limit(self.CANDIDATES)))
                return self._first_match(ticket, rule, terms, candidates, now)
            # The same candidates in the same order, as plain rows with the stored rule and terms (the ticket
            # objects, their JSON columns and their first mails were read for every report: a storm was O(n²)),
            # read in two pages: the first few decide a storm.
            rows = (select(Ticket.id, Ticket.key, Ticket.created_at, Ticket.incident_rule, Ticket.incident_terms,
                           Incident.status).outerjoin(Incident, Ticket.incident_id == Incident.id)
                    .where(*where).order_by(*order))
            for offset, limit in ((0, self.FIRST_PAGE), (self.FIRST_PAGE, self.CANDIDATES - self.FIRST_PAGE)):
                page = session.execute(rows.offset(offset).limit(limit)).all()
                for row in page:
                    match = self._row_match(session, ticket, rule, terms, row, now)
                    if match is not None:
                        return match
                if len(page) < limit:
                    break
            return None

    def _row_match(self, session: Session, ticket: Ticket, rule: str, terms: tuple[str, ...], row: Any,
                   now: datetime) -> tuple[Ticket, LinkReason] | None:
        if row.status is not None and row.status != "open":
            return None
        stored = _stored(row.incident_rule, row.incident_terms)
        if stored is None:  # opened before revision 0006: judged as before, from the object
            earlier = session.get(Ticket, row.id)
            return None if earlier is None else self._first_match(ticket, rule, terms, [earlier], now)
        if stored[0] != rule:
            return None
        shared = self._shared(ticket, terms, stored[1])
        if shared is None:
            return None
        earlier = session.get(Ticket, row.id)
        if earlier is None:
            return None
        minutes = (now - row.created_at).total_seconds() / 60
        return earlier, LinkReason(rule, ticket.role, shared[:8], minutes, row.key)

    def _shared(self, ticket: Ticket, terms: tuple[str, ...], earlier: tuple[str, ...]) -> tuple[str, ...] | None:
        wanted = set(terms)
        shared = tuple(t for t in earlier if t in wanted)
        needed = self.settings.min_shared_terms_p1 if ticket.severity == "P1" else self.settings.min_shared_terms
        return shared if len(shared) >= needed else None

    def _first_match(self, ticket: Ticket, rule: str, terms: tuple[str, ...], candidates: list[Ticket],
                     now: datetime) -> tuple[Ticket, LinkReason] | None:
        for earlier in candidates:
            if earlier is ticket or deciding_rule(earlier) != rule:
                continue
            if earlier.incident is not None and earlier.incident.status != "open":
                continue
            shared = self._shared(ticket, terms, terms_of(earlier))
            if shared is None:
                continue
            minutes = (now - earlier.created_at).total_seconds() / 60
            return earlier, LinkReason(rule, ticket.role, shared[:8], minutes, earlier.key)
        return None


def start_incident(session: Session, first: Ticket, now: datetime, *, rule: str,
                   terms: Iterable[str] = ()) -> Incident:
    """A new incident whose first report is *first* (it keeps its page and its ladder)."""
    number = next_number(session, INCIDENT_COUNTER)
    incident = Incident(key=f"INC-{number}", title=first.subject or "(no subject)", status="open",
                        severity=first.severity, role=first.role, rule=rule, terms=list(terms)[:MAX_TERMS],
                        created_at=first.created_at, last_report_at=first.created_at)
    session.add(incident)
    first.incident = incident
    record_event(session, first, LINKED, now, detail=f"first report of incident {incident.key}",
                 data={"incident": incident.key, "first": True})
    return incident


def join(session: Session, incident: Incident, ticket: Ticket, reason: LinkReason, now: datetime,
         actor: str = "system") -> None:
    if actor != "system":
        MEMBERSHIP_CHANGES[0] += 1
    ticket.incident = incident
    incident.last_report_at = max(incident.last_report_at, ticket.created_at)
    record_event(session, ticket, LINKED, now, actor=actor,
                 detail=f"linked to incident {incident.key}: {reason.sentence()}",
                 data={"incident": incident.key, **reason.to_json()})


def unlink(session: Session, ticket: Ticket, now: datetime, actor: str) -> Incident | None:
    """Take *ticket* out of its incident; an incident left with one report is left as it is."""
    incident = ticket.incident
    if incident is None:
        return None
    MEMBERSHIP_CHANGES[0] += 1
    ticket.incident = None
    if ticket in incident.tickets:
        incident.tickets.remove(ticket)
    record_event(session, ticket, UNLINKED, now, actor=actor, detail=f"taken out of incident {incident.key}",
                 data={"incident": incident.key})
    return incident


def add_update(session: Session, incident: Incident, text: str, author: str, now: datetime,
               kind: str = "update") -> IncidentUpdate:
    update = IncidentUpdate(incident=incident, at=now, kind=kind, author=author, text=text[:4000])
    session.add(update)
    return update


def link_reason(ticket: Ticket) -> str | None:
    """The latest stored reason why *ticket* is in its incident (for ``show``), or None."""
    if ticket.incident is None:
        return None
    linked = [e for e in ticket.events if e.kind == LINKED]
    return linked[-1].detail if linked else None


def incidents_in(session: Session, since: datetime, until: datetime, limit: int = 20) -> list[dict[str, Any]]:
    """Incidents open at some time in [since, until), newest first: what the dashboard and digests list.

    Each as plain data (key, title, reports, reporters, first/last report, status, resolved_at, age in
    seconds at *until*, and ``line``: "SSO outage, 8 reports, 08:12-10:05, resolved" in UTC times; the
    callers format local times from the fields).
    """
    query = (select(Incident).where(Incident.created_at < until,
                                    or_(Incident.resolved_at.is_(None), Incident.resolved_at >= since))
             .order_by(Incident.created_at.desc()).limit(limit))
    rows = []
    for incident in session.scalars(query):
        reporters = [t.reporter for t in incident.tickets]
        rows.append({
            "key": incident.key, "title": incident.title, "status": incident.status, "severity": incident.severity,
            "reports": len(reporters), "reporters": reporters, "tickets": [t.key for t in incident.tickets],
            "first": incident.created_at, "last": incident.last_report_at, "resolved_at": incident.resolved_at,
            "age_seconds": max(0.0, ((incident.resolved_at or until) - incident.created_at).total_seconds()),
        })
    return rows
