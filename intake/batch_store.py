"""The batched write path: a run of plain new-ticket mails stored with one statement per table.

Why: storing a new ticket through the ORM, one SAVEPOINT per mail, cost eleven SQL
statements and ~5 ms per ticket; at IMAP drain rates that was most of the time (issue 17).
For the common case (a mail that is new, not ignored by a guard, joins no ticket, and whose
``on_opened`` hooks all have a batch form) every value is decided first (``take``: no
writes), then the run is written at once (``flush``): ticket numbers with one counter update,
one executemany (ids reserved first) for tickets and messages, one executemany each for
participants, events, attachments and the hooks' rows (the acknowledgements' outbox rows),
one ``DELETE ... IN`` for the senders' bounce marks.

Every guarantee of the per-message path holds because that path stays the fallback:
  - a mail that is anything but plain (duplicate candidate, guard hit, thread evidence,
    a failing stage, a hook that refuses it) is never taken; the pipeline stores the run
    taken so far, then that mail the per-message way, so outcomes keep the mailbox order;
  - the run is written inside its own SAVEPOINT: if anything fails (a second instance
    stored one of the Message-IDs first: IntegrityError; a poison value) the savepoint is
    rolled back, the batch memo restored, and each mail of the run goes the per-message way,
    where a duplicate is a duplicate and a poison mail is shunted alone;
  - it is the same transaction as the rest of the batch, committed before the IMAP MOVE:
    a crash leaves each mail stored with its acknowledgement queued, or still in the mailbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from operator import itemgetter
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Table, bindparam, delete, func, insert, select, text
from sqlalchemy.orm import Session

from intake.guards.rules import GuardContext, first_hit
from intake.opening import OpenedTicket, TicketOpener
from intake.parse.message import ParsedMessage
from intake.rows import attachment_values, hold_big_raws, message_values, write_raw
from tickets.attachments import AttachmentStore
from tickets.lifecycle import allocate_keys
from tickets.models import Attachment, Base, BouncingRecipient, Event, Message, OutboxItem, Participant, Ticket
from tickets.store import database_unreachable, rows_in, savepoint
from tickets.tokens import ReplyTokens

R = TypeVar("R")
_CHUNK = 500  # bound the IN (...) lists

_TICKETS: Table = Ticket.__table__  # type: ignore[assignment]
_MESSAGES: Table = Message.__table__  # type: ignore[assignment]
_PARTICIPANTS: Table = Participant.__table__  # type: ignore[assignment]
_EVENTS: Table = Event.__table__  # type: ignore[assignment]
_ATTACHMENTS: Table = Attachment.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxItem.__table__  # type: ignore[assignment]
# Statements built once: the SMTP group commit pays them for every group of a few mails (``rows_in``).
_MAX_ID: dict[str, Any] = {}
_UNBOUNCE = delete(BouncingRecipient.__table__).where(
    BouncingRecipient.__table__.c.email.in_(bindparam("values", expanding=True)))
_THREADABLE = (
    select(_MESSAGES.c.message_id).where(_MESSAGES.c.message_id.in_(bindparam("values", expanding=True)),
                                         _MESSAGES.c.ticket_id.is_not(None)),
    select(_OUTBOX.c.message_id).where(_OUTBOX.c.message_id.in_(bindparam("values", expanding=True)),
                                       _OUTBOX.c.ticket_id.is_(None)))


class BatchMemo(Protocol):
    """What the pipeline's per-batch memo offers (``intake.pipeline._BatchMemo``)."""

    dedup: Any  # KnownMessages: ids, hashes, may_contain
    tickets_by_sender: dict[str, int]

    def seen(self, parsed: ParsedMessage, action: str) -> None: ...


class _Taken:
    __slots__ = ("index", "opened", "source")

    def __init__(self, index: int, opened: OpenedTicket, source: str) -> None:
        self.index, self.opened, self.source = index, opened, source


class BatchStore(Generic[R]):
    """One batch's fast path; ``take`` plans a mail into the current run, ``flush`` writes the run.

    ``created`` turns a stored ticket into the pipeline's result, ``fallback`` stores one mail
    of a failed run the per-message way (by its index in the batch).
    """

    def __init__(self, session: Session, memo: BatchMemo, opener: TicketOpener, tokens: ReplyTokens,
                 guards: GuardContext, files: AttachmentStore, now: datetime,
                 batch: Sequence[ParsedMessage], *, created: Callable[[OpenedTicket], R],
                 fallback: Callable[[int], R], needs_care: Callable[[ParsedMessage], bool] | None = None) -> None:
        self.session = session
        # The pipeline's own reasons to take a mail the per-message way (a flood, the identity rule).
        self.needs_care = needs_care
        self.memo = memo
        self.opener = opener
        self.tokens = tokens
        self.guards = guards
        self.files = files
        self.now = now
        self.created = created
        self.fallback = fallback
        self.hooks = opener.batch_hooks()
        self.prefix = opener.config.support.ticket_prefix
        self.taken: list[_Taken] = []
        self._saved: tuple[set[str], set[str], dict[str, int]] | None = None
        # Message-IDs a mail may thread to: this batch's own and those stored with a ticket (one query).
        self.batch_ids = {p.message_id for p in batch}
        wanted = {i for p in batch for i in [p.in_reply_to, *p.references] if i}
        self.threadable = self.batch_ids | _stored_with_ticket(session, wanted)

    # --- planning: no writes ---------------------------------------------------------------------
    def take(self, index: int, parsed: ParsedMessage | str, source: str) -> bool:
        """Plan *parsed* into the run; False when it must go the per-message way (after ``flush``)."""
        if self.hooks is None or not isinstance(parsed, ParsedMessage):
            return False
        try:
            # Guards the parse worker ran (``guards_clear``) are not run again: the same mail, the same answer.
            if not self._plain(parsed) or (not parsed.guards_clear and first_hit(parsed, self.guards) is not None):
                return False
            if self.needs_care is not None and self.needs_care(parsed):
                return False
            opened = self.opener.plan(parsed, self.now, parsed.verdict)
            if not all(hook.accepts(self.session, opened) for hook in self.hooks):
                return False
            opened.request = message_values(parsed, source, self.now, disposition="created")
        except Exception:  # noqa: BLE001 - a failing stage is the per-message path's to report and shunt
            return False
        if self._saved is None:
            self._saved = (set(self.memo.dedup.ids), set(self.memo.dedup.hashes), dict(self.memo.tickets_by_sender))
        self.taken.append(_Taken(index, opened, source))
        self.memo.seen(parsed, "created")
        return True

    def _plain(self, parsed: ParsedMessage) -> bool:
        """New for sure: no dedup candidate, no signed token, no ticket tag, no reference we could join."""
        if self.memo.dedup.may_contain(parsed):
            return False
        if any(i in self.threadable for i in [parsed.in_reply_to, *parsed.references] if i):
            return False
        recipients = parsed.all_recipients
        # Any token, genuine or not, and any tag: what it means is the per-message path's business; a
        # token named in the text too (pasted, quoted): that path stores the mail with it redacted.
        return (self.tokens.find_signed(recipients, parsed.subject, parsed.from_addr, self.now) is None
                and self.tokens.plus_key(recipients) is None and not self.tokens.subject_keys(parsed.subject)
                and not self.tokens.carries_token(parsed.body_full))

    # --- writing ---------------------------------------------------------------------------------
    def flush(self) -> dict[int, R]:
        """Write the run taken so far; on any failure store its mails the per-message way instead."""
        taken, saved = self.taken, self._saved
        self.taken, self._saved = [], None
        if not taken:
            return {}
        try:
            with savepoint(self.session):
                self._write([t.opened for t in taken])
        except Exception as exc:
            if database_unreachable(exc):
                raise  # the database is gone, locked or full: the pipeline's IngestUnavailable
            if saved is not None:
                self.memo.dedup.ids, self.memo.dedup.hashes = saved[0], saved[1]
                self.memo.tickets_by_sender.clear()
                self.memo.tickets_by_sender.update(saved[2])
            return {t.index: self.fallback(t.index) for t in taken}
        return {t.index: self.created(t.opened) for t in taken}

    def _write(self, opened: list[OpenedTicket]) -> None:
        session = self.session
        for new, (number, key) in zip(opened, allocate_keys(session, self.prefix, len(opened)), strict=True):
            new.ticket.update(number=number, key=key)
        ticket_ids = _insert_with_ids(session, _TICKETS, [new.ticket for new in opened])
        for new, ticket_id in zip(opened, ticket_ids, strict=True):
            new.ticket["id"] = ticket_id
            new.request["ticket_id"] = ticket_id
        senders = sorted({new.ticket["reporter"] for new in opened if new.ticket["reporter"]})
        for start in range(0, len(senders), _CHUNK):
            # Someone whose address bounced writes to us again: the address works, stop suppressing it.
            session.connection().execute(_UNBOUNCE, {"values": senders[start:start + _CHUNK]})
        rows: dict[Table, list[dict[str, Any]]] = {}
        for hook in self.hooks or ():
            for table, values in hook.rows(session, opened, self.now):
                rows.setdefault(table, []).append(values)
        messages = [new.request for new in opened] + rows.pop(_MESSAGES, [])
        held = hold_big_raws(session.connection(), messages)  # SQLite: big raw bytes go in after the row
        message_ids = _insert_with_ids(session, _MESSAGES, messages)
        for values, raw in held:
            write_raw(session.connection(), values["id"], raw)
            values["raw"] = raw
        for new, message_id in zip(opened, message_ids, strict=False):
            new.request["id"] = message_id
            ticket_id = new.ticket["id"]
            rows.setdefault(_PARTICIPANTS, []).extend(
                {"ticket_id": ticket_id, "email": email, "kind": kind} for email, kind in new.participants)
            rows.setdefault(_EVENTS, []).extend(
                {"ticket_id": ticket_id, "at": self.now, "kind": kind, "actor": actor, "detail": detail,
                 "data": data, "message_id": message_id} for kind, actor, detail, data in new.events)
            rows.setdefault(_ATTACHMENTS, []).extend(
                {**attachment_values(self.files, a), "message_id": message_id} for a in new.parsed.attachments)
        for table in _sorted_tables():  # parents before children
            if rows.get(table):
                insert_rows(session, table, rows[table])


def _insert_with_ids(session: Session, table: Table, rows: Iterable[dict[str, Any]]) -> list[int]:
    """One executemany, ids assigned first (in the order of *rows*): the children need them.

    Why not ``RETURNING``: with parameter order SQLAlchemy writes one row per statement on
    SQLite.  Ids are reserved instead: on SQLite from ``max(id)`` under the write lock the
    transaction holds (``BEGIN IMMEDIATE``), on PostgreSQL from the column's sequence (one
    ``nextval`` query for the run; two instances never get the same id).
    """
    rows = list(rows)
    if not rows:
        return []
    ids = _reserve_ids(session, table, len(rows))
    for values, new_id in zip(rows, ids, strict=True):
        values["id"] = new_id
    insert_rows(session, table, rows)
    return ids


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """``session.execute(insert(table), rows)`` without SQLAlchemy's per-row parameter machinery.

    Why: with a few hundred rows per statement, building each row's parameters (defaults,
    type processing, one dict per row inside SQLAlchemy) cost more than the driver's
    executemany itself.  Here the statement is compiled once per (dialect, table, columns),
    as SQLAlchemy would compile it, and each row becomes the driver's parameters with the
    same bind processors (JSON, the UTC datetimes) and the same client-side column defaults;
    a run of rows with other columns gets its own statement, in order (ids follow the order).
    """
    connection = session.connection()
    start = 0
    while start < len(rows):
        keys = rows[start].keys()
        end = start + 1
        while end < len(rows) and rows[end].keys() == keys:
            end += 1
        plan = _insert_plan(connection.dialect, table, tuple(keys))
        if plan is None:
            session.execute(insert(table), rows[start:end])
        else:
            sql, names, build = plan
            seen: dict[tuple[int, Any], Any] = {}  # see _processed
            if connection.dialect.positional:
                params: list[Any] = [tuple(build(row, seen)) for row in rows[start:end]]
            else:
                params = [dict(zip(names, build(row, seen), strict=True)) for row in rows[start:end]]
            connection.exec_driver_sql(sql, params)
        start = end


_Converter = Callable[[dict[str, Any], dict[tuple[int, Any], Any]], Any]  # (row, seen) -> driver value
_Builder = Callable[[dict[str, Any], dict[tuple[int, Any], Any]], list[Any]]  # (row, seen) -> driver values
_Plan = tuple[str, tuple[str, ...], _Builder]
_PLANS: dict[tuple[str, str, tuple[str, ...]], _Plan | None] = {}


def _insert_plan(dialect: Any, table: Table, keys: tuple[str, ...]) -> _Plan | None:
    """(driver SQL, bind names in order, one converter per bind: row -> driver value), or None when the
    statement is anything but a plain INSERT of columns (then SQLAlchemy executes it itself)."""
    cache_key = (dialect.name + "." + dialect.driver, table.name, keys)
    if cache_key in _PLANS:
        return _PLANS[cache_key]
    plan = None
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    if dialect.positional:
        names = tuple(compiled.positiontup or ())
    else:
        names = tuple(compiled.binds)
    columns = {column.key: column for column in table.columns}
    if (set(names) <= set(columns) and set(keys) <= set(names) and not compiled.escaped_bind_names
            and dialect.paramstyle in ("qmark", "pyformat", "named", "format", "numeric")):
        processors = compiled._bind_processors
        converters = [_converter(name, columns[name], processors.get(name), name in keys) for name in names]
        if all(c is not None for c in converters):
            plan = (compiled.string, names, _builder(names, converters, processors, keys))  # type: ignore[arg-type]
    _PLANS[cache_key] = plan
    return plan


def _builder(names: tuple[str, ...], converters: list[_Converter], processors: dict[str, Any],
             keys: tuple[str, ...]) -> _Builder:
    """One row's driver values in bind order: the converters, or where every bind is a given column,
    one ``itemgetter`` call and the bind processors only where a column has one.

    Why: a converter call per column per row was a tenth of the SMTP storing thread (py-spy);
    the values are the same (``_processed`` where a column has a processor, else the row's).
    """
    if len(names) < 2 or not set(names) <= set(keys):
        return lambda row, seen: [convert(row, seen) for convert in converters]
    fetch = itemgetter(*names)
    processed = [(i, process) for i, name in enumerate(names) if (process := processors.get(name)) is not None]

    def build(row: dict[str, Any], seen: dict[tuple[int, Any], Any]) -> list[Any]:
        values = list(fetch(row))
        for i, process in processed:
            values[i] = _processed(process, values[i], seen)
        return values

    return build


def _converter(name: str, column: Any, process: Callable[[Any], Any] | None, given: bool) -> _Converter | None:
    if given:
        if process is None:
            return lambda row, seen: row[name]
        return lambda row, seen: _processed(process, row[name], seen)
    default = column.default
    if default is None or not (default.is_scalar or default.is_callable):
        return None  # a server default or sequence: leave the statement to SQLAlchemy
    if default.is_scalar:
        value = default.arg if process is None else process(default.arg)
        return lambda row, seen: value
    make = default.arg
    if process is None:
        return lambda row, seen: make(None)
    return lambda row, seen: process(make(None))


def _processed(process: Callable[[Any], Any], value: Any, seen: dict[tuple[int, Any], Any]) -> Any:
    """``process(value)``, worked out once per statement for a value its rows repeat.

    Why: a batch's rows share one ``now`` (created, updated, event and outbox times are the same
    datetime object) and most JSON columns hold an empty list or dict; their bind processing
    (UTC conversion and SQLite's text form, ``json.dumps``) was a sixth of the storing process's
    time (``bench/store_cpu.py``).  Only values that cannot change while the rows are converted
    are reused, and only within one statement (*seen*), whose rows keep them alive: a datetime
    (immutable) by identity, an empty list or dict by its type.
    """
    kind = type(value)
    if kind is datetime:
        key: tuple[int, Any] = (id(process), id(value))
    elif (kind is list or kind is dict) and not value:
        key = (id(process), kind)
    else:
        return process(value)
    if key not in seen:
        seen[key] = process(value)
    return seen[key]


def _reserve_ids(session: Session, table: Table, count: int) -> list[int]:
    if session.get_bind().dialect.name == "postgresql":
        reserved = session.execute(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": count})
        return sorted(int(i) for i in reserved.scalars())
    if table.name not in _MAX_ID:
        _MAX_ID[table.name] = select(func.coalesce(func.max(table.c.id), 0))
    session.flush()  # as the ORM's autoflush would: nothing of *table* may be pending unnumbered
    last = int(session.connection().execute(_MAX_ID[table.name]).scalar() or 0)
    return list(range(last + 1, last + count + 1))


def _stored_with_ticket(session: Session, message_ids: set[str]) -> set[str]:
    """Which of *message_ids* are stored messages of a ticket (a mail naming one may thread), or our mails
    without a ticket (a digest: a reply to it goes to the project managers, issue 14)."""
    return {row[0] for statement in _THREADABLE for row in rows_in(session, statement, message_ids, chunk=_CHUNK)}


@cache
def _sorted_tables() -> list[Table]:
    """The tables, parents before children: worked out once (the sort cost ~0.1 ms per SMTP group)."""
    return Base.metadata.sorted_tables
