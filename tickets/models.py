"""SQLAlchemy 2.0 typed models: the one schema every room reads and writes.

Why these tables: a ticket is only as trustworthy as its history, so every inbound
and outbound mail is a ``Message`` (raw bytes kept), every change an ``Event``, and
every mail we will send an ``OutboxItem`` committed in the same transaction as the
change that caused it.  Idempotency lives in unique constraints (Message-ID,
outbox idempotency key, schedule period key, escalation level), so re-delivery,
restarts and a second instance change nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

STATUSES = ("new", "acknowledged", "in_progress", "waiting_on_customer", "resolved", "closed")
OPEN_STATUSES = ("new", "acknowledged", "in_progress", "waiting_on_customer")
CLOSED_STATUSES = ("resolved", "closed")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Counter(Base):
    """Named counters (ticket numbers): incremented with UPDATE ... RETURNING under a row lock."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Setting(Base):
    """Small facts the service keeps about itself: created_at (default go-live), reply-token secret."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Ticket(Base):
    __tablename__ = "tickets"
    # Issue 17, a storm of one problem: the incident's reports in id order (the known-issue acknowledgement
    # reads only the new ones), "has the team answered one of them?", and the newest reports of a topic
    # (IncidentGrouper.find_match: read backwards from now, a storm's first candidate matches).
    __table_args__ = (Index("ix_tickets_incident_id_id", "incident_id", "id"),
                      Index("ix_tickets_incident_answered", "incident_id", "first_response_at"),
                      Index("ix_tickets_role_created", "role", "created_at", "id"),
                      # The flood guard's count of a sender's last hour, from the index alone (migration 0007).
                      Index("ix_tickets_reporter_created", "reporter", "created_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    reporter: Mapped[str] = mapped_column(String(320))
    reporter_name: Mapped[str] = mapped_column(String(320), default="")
    severity: Mapped[str] = mapped_column(String(2), index=True)
    role: Mapped[str] = mapped_column(String(40))  # indexed by ix_tickets_role_created (first column)
    assignee: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(24), default="new", index=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]
    # SLA: response_due is recomputed on severity change and shifted by pauses.
    response_due: Mapped[datetime | None] = mapped_column(index=True)
    first_response_at: Mapped[datetime | None]
    response_met: Mapped[bool | None] = mapped_column(Boolean)
    response_elapsed_seconds: Mapped[float | None] = mapped_column(Float)
    resolution_due: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)
    resolution: Mapped[str | None] = mapped_column(Text)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0)
    # Classifier verdict: [{"name", "description", "severity", "role", "evidence": [...]}, ...]
    classification: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Who is affected x what is hit, with words, and why the verdict is uncertain (classifier.verdict.Triage)
    triage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)
    original_severity: Mapped[str | None] = mapped_column(String(2))
    original_role: Mapped[str | None] = mapped_column(String(40))
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    linked_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    # The incident this ticket reports (issue 14): several reports of one problem share one incident.
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))  # ix_tickets_incident_id_id
    incident: Mapped[Incident | None] = relationship(back_populates="tickets", foreign_keys=[incident_id])
    # What grouping compares, fixed when the ticket is opened (tickets.incidents.grouping_facts): the deciding
    # rule ("" for a fallback verdict) and the significant terms of subject and first mail, space-separated.
    # NULL: opened before revision 0006 or with [incidents] off; then read from classification and first mail.
    incident_rule: Mapped[str | None] = mapped_column(Text)
    incident_terms: Mapped[str | None] = mapped_column(Text)

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", foreign_keys="Message.ticket_id"
    )
    events: Mapped[list[Event]] = relationship(back_populates="ticket", order_by="Event.id")
    participants: Mapped[list[Participant]] = relationship(back_populates="ticket", order_by="Participant.id")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Incident(Base):
    """One problem reported by several people: its tickets, its page, its updates and its resolution.

    Why a parent record (issue 14) and not "the first ticket": the first report can be unlinked
    (``#unlink``) while the incident goes on, and the public status page (issue 16) needs the
    incident's own title, times and updates, not one reporter's ticket.
    """

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)  # "INC-3"
    title: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)  # open | resolved
    severity: Mapped[str] = mapped_column(String(2))
    role: Mapped[str] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(String(80), default="")  # the classifier rule the reports share
    terms: Mapped[list[Any]] = mapped_column(JSON, default=list)  # the first report's significant terms
    created_at: Mapped[datetime] = mapped_column(index=True)
    last_report_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)
    tickets: Mapped[list[Ticket]] = relationship(back_populates="incident", order_by="Ticket.id",
                                                 foreign_keys="Ticket.incident_id")
    updates: Mapped[list[IncidentUpdate]] = relationship(back_populates="incident", order_by="IncidentUpdate.id")


class IncidentUpdate(Base):
    """What the team said about an incident (``#update text``, the resolution), kept for the status page."""

    __tablename__ = "incident_updates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))  # update | resolved | reopened
    author: Mapped[str] = mapped_column(String(320), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    incident: Mapped[Incident] = relationship(back_populates="updates")


class Participant(Base):
    """Who takes part in a ticket (reporter, cc, team): decides whether a subject tag may thread."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("ticket_id", "email"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(16))  # reporter | cc | team
    ticket: Mapped[Ticket] = relationship(back_populates="participants")


class Message(Base):
    """One mail, inbound or outbound; the raw bytes are kept for replay and audits."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    direction: Mapped[str] = mapped_column(String(8))  # in | out
    disposition: Mapped[str] = mapped_column(String(24))  # created | threaded | ignored | sent | comment
    rule: Mapped[str | None] = mapped_column(String(80))  # guard rule that ignored it
    from_addr: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(320), default="")
    to_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")  # quote-stripped, for the ticket view
    body_full: Mapped[str] = mapped_column(Text, default="")
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[Any]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(40), default="")  # smtp | imap | ingest | outbox
    notes: Mapped[list[Any]] = mapped_column(JSON, default=list)  # decoding problems etc.
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    ticket: Mapped[Ticket | None] = relationship(back_populates="messages", foreign_keys=[ticket_id])
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message", order_by="Attachment.id")


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    stored: Mapped[str] = mapped_column(String(16))  # file | omitted
    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """Audit trail: who did what to a ticket, when, and which message caused it."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(320), default="system")
    detail: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    ticket: Mapped[Ticket] = relationship(back_populates="events")
    # Set the object, not the id, when the message is not flushed yet: one flush stores both.
    message: Mapped[Message | None] = relationship(foreign_keys=[message_id])


class Correction(Base):
    """A team member's #severity or #assign, kept with what the classifier saw when the mail came in.

    Why a table of its own and not only the audit event: ``hypercare rules suggest`` and
    ``rules eval --overrides`` learn from these rows; each holds the verdict's rules and axes and
    the words of the mail, so a later rule file or a purged thread cannot change what was learnt.
    """

    __tablename__ = "corrections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(16))  # severity | role
    old: Mapped[str] = mapped_column(String(40))
    new: Mapped[str] = mapped_column(String(40))
    original: Mapped[str | None] = mapped_column(String(40))  # what the classifier said
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # classification, triage, subject, text


class OutboxItem(Base):
    """A fully rendered mail waiting to be sent; idempotency_key makes enqueueing repeatable."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))  # ack | escalation | status_daily | ...
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[Any]] = mapped_column(JSON)
    suppressed: Mapped[list[Any]] = mapped_column(JSON, default=list)  # bouncing recipients left out
    message_id: Mapped[str] = mapped_column(String(998))
    subject: Mapped[str] = mapped_column(Text, default="")
    mime: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|sent|dead|suppressed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(120))  # the worker that holds the claim
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    ticket: Mapped[Ticket | None] = relationship()


class ScheduleRun(Base):
    """A scheduled job done for one period (``status_daily`` / ``2026-11-24``): never twice."""

    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("job", "period_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job: Mapped[str] = mapped_column(String(40))
    period_key: Mapped[str] = mapped_column(String(40))
    ran_at: Mapped[datetime]
    detail: Mapped[str] = mapped_column(Text, default="")


class Escalation(Base):
    """One escalation level reached by one ticket (per response-clock cycle): never sent twice."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("ticket_id", "cycle", "level"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    level: Mapped[str] = mapped_column(String(16))  # "0.5", "0.8", "1.0", "p1-new"
    at: Mapped[datetime]
    recipients: Mapped[list[Any]] = mapped_column(JSON, default=list)


class ImapState(Base):
    """Per mailbox: UIDVALIDITY, last UID committed, and health for ``hypercare status``."""

    __tablename__ = "imap_state"
    mailbox: Mapped[str] = mapped_column(String(400), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    waiting: Mapped[int | None] = mapped_column(Integer)


class QuarantineItem(Base):
    """A message that could not be ingested, with the reason; replayable after a fix."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="held")  # held | replayed
    replayed_at: Mapped[datetime | None]
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # sha256 of the raw bytes: the same mail failing again (re-delivered, re-polled) is one item, counted.
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    repeats: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    last_seen_at: Mapped[datetime | None]


class RelayState(Base):
    """Per relay (``host:port`` or ``maildir``): what the outbox last heard from it, for health."""

    __tablename__ = "relay_state"
    relay: Mapped[str] = mapped_column(String(400), primary_key=True)
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]  # first failure of the current outage; None when reachable


class BouncingRecipient(Base):
    """An address our mail bounced from: suppressed by the outbox until it writes to us again."""

    __tablename__ = "bouncing_recipients"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    count: Mapped[int] = mapped_column(Integer, default=1)
    reason: Mapped[str] = mapped_column(Text, default="")


class Feedback(Base):
    """A reporter's 1-5 rating of a resolved ticket."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class ExitDecision(Base):
    """The steering committee's decision on the end of hypercare, as recorded by a project manager.

    Append-only: a later decision supersedes an earlier one (the latest is shown), and every one
    stays as the audit trail (who, when, how: a signed ``#decision`` reply or the CLI).
    """

    __tablename__ = "exit_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))  # go | conditional | no-go
    text: Mapped[str] = mapped_column(Text, default="")  # conditions or comment
    actor: Mapped[str] = mapped_column(String(320))  # the project manager's address
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime]
    via: Mapped[str] = mapped_column(String(16))  # mail | cli
    message_id: Mapped[str | None] = mapped_column(String(998))  # the signed reply, when via mail
