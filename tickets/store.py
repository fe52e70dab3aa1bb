"""Engine, sessions and schema upgrades: how every room reaches the database.

Why a class and not module globals: tests run the same code on SQLite and
PostgreSQL side by side, and two instances of the service may share one database,
so the engine is created from config and passed in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    ScalarSelect,
    String,
    Table,
    bindparam,
    create_engine,
    event,
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from core.errors import TryLater, UserError
from core.private_files import private_file, restrict
from tickets.models import Base, Counter, Setting

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseUnavailable(TryLater):
    """The database is unreachable or locked now (server down, another writer): try again later (exit 75)."""


class DatabaseMisconfigured(UserError):
    """The ``[database] url`` cannot work as written (bad URL, no driver, unopenable file, refused login): exit 2."""


# An OperationalError whose text says the configuration is wrong; anything else is "try later", so an MTA
# piping mail to us keeps it queued (issue 11: a PostgreSQL outage made every command exit 2).
_CONFIG_MARKERS = ("unable to open database file", "authentication failed", "does not exist",
                   "no password supplied", "invalid dsn", "permission denied", "not a database")
# What "busy" looks like, as opposed to "unreachable": the server is there but cannot serve us now.
_BUSY_MARKERS = ("locked", "busy", "too many clients", "lock timeout", "statement timeout",
                 "canceling statement", "starting up")


def database_error(url: str, exc: BaseException) -> DatabaseUnavailable | DatabaseMisconfigured:
    """The one-line error for a database failure: misconfigured (exit 2) or unavailable (exit 75)."""
    orig = getattr(exc, "orig", None) or exc
    detail = " ".join(str(orig).split())[:300] or type(orig).__name__
    if any(marker in detail.lower() for marker in _CONFIG_MARKERS):
        return DatabaseMisconfigured(f"database {url}: {detail}; check [database] url")
    return DatabaseUnavailable(f"database {url}: {detail}")


def database_unreachable(exc: BaseException) -> bool:
    """True when *exc* says the database cannot be used now (retry later), not that a value was refused.

    Why the distinction: a refused value (PostgreSQL's DataError for NUL or an over-long string, an
    encoding error of the driver) would be refused again on every retry, so treating it as
    "unavailable" turned one mail into a 451 forever and a blocked mailbox; it is that message's
    outcome (quarantine) instead.  Lost connections, locks, timeouts and a full disk are the
    database's state.
    """
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """A SAVEPOINT around one unit (a mail, an escalation) that fails with the unit's error, never the rollback's.

    Why: SQLite that meets a full disk (SQLITE_FULL), an I/O error or an interrupt rolls the whole
    transaction back by itself, and a lost PostgreSQL connection takes it along too.  ``ROLLBACK TO``
    then fails ("no such savepoint"), and that error used to replace the real one: a full database disk
    was reported as "no such savepoint", and a loop that caught it per item went on outside any
    transaction.  The caller sees the first error; one that says the database is unusable
    (``database_unreachable``) must end the whole unit of work (retry later), not just this item.
    """
    nested = session.begin_nested()
    try:
        yield
        nested.commit()  # flushes what is pending: a full disk may surface here too
    except BaseException as exc:
        with suppress(SQLAlchemyError):
            nested.rollback()  # also after a failed flush deactivated it (the session is unusable until then)
        first = _before_rollback(exc)
        if first is not exc:
            raise first from None
        raise


def _before_rollback(exc: BaseException) -> BaseException:
    """The error a failed ``ROLLBACK TO SAVEPOINT`` replaced (SQLAlchemy rolls back a failed flush's
    savepoint itself, and raises the rollback's error with the real one as its context)."""
    while (isinstance(exc, DBAPIError) and (exc.statement or "").startswith("ROLLBACK TO SAVEPOINT")
           and isinstance(exc.__context__, Exception)):
        exc = exc.__context__
    return exc


@dataclass(frozen=True)
class DatabaseProbe:
    """What a quick look at the database found: ``ok``, ``busy`` (there, but locked) or ``unreachable``."""

    state: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


class Store:
    """Owns the engine and hands out sessions; the unit of work is one ``session()`` block."""

    def __init__(self, url: str, base_dir: Path | None = None, busy_timeout: float = 30.0) -> None:
        self.url = _resolve_sqlite_path(url, base_dir)
        self.engine: Engine = _make_engine(self.url, busy_timeout)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.engine.execution_options(hc_read_only=True), expire_on_commit=False)
        self._bookkeeping = sessionmaker(self.engine.execution_options(hc_not_synced=True), expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def bookkeeping(self) -> Iterator[Session]:
        """A transaction whose commit need not survive a power loss: records that are safely redone when lost.

        Why: every other commit waits for the disk (SQLite ``synchronous=FULL``, PostgreSQL's default), since
        the desk lets go of a mail after it; a drain also records the mailbox's progress (the last UID) after
        each batch's MOVE, and that record only spares the next poll a search: lost, the moved mail is not
        in the mailbox any more and mail left there is recognised as a duplicate.  So its commit does not wait
        for the disk (SQLite: ``synchronous=NORMAL`` for this transaction, which the next durable commit
        syncs along; PostgreSQL: ``synchronous_commit`` off for it).  Never for anything a mail's outcome
        or acknowledgement depends on.
        """
        with self._bookkeeping() as session, session.begin():
            if self.dialect == "postgresql":
                session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction: on SQLite it does not take the write lock, so readers never queue."""
        with self._readers() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Create or migrate the schema to the newest revision (alembic).

        Why the quick look first: importing Alembic costs about a quarter of a second, and on
        almost every start the schema is already current; the revision files are read as text.
        """
        try:
            heads = _head_revisions()
            if self._stamped_at(heads) or self._created_from_the_models(heads):
                return
        except (OperationalError, InterfaceError) as exc:
            raise database_error(self.safe_url, exc) from None
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("path_separator", "os")
        try:
            if self._at_head(cfg):
                return  # the common case: no write lock taken, so readers start even while a writer works
            with self.engine.begin() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except (OperationalError, InterfaceError) as exc:
            raise database_error(self.safe_url, exc) from None

    def _created_from_the_models(self, heads: set[str] | None) -> bool:
        """On a database without any table: the models' tables created and stamped at *heads*, as Alembic does
        it for a new database; False (Alembic migrates) when it holds a table or the heads are unknown.

        Why: a new database (the first start, every test's desk, the benchmarks' fresh directory) ran all
        seven migrations through Alembic, ~0.15-0.35 s and Alembic's import.  ``tests/test_schema.py``
        holds the created schema to the migrated one, column defaults included, on both backends.
        """
        if heads is None or len(heads) != 1:
            return False
        with self.engine.begin() as connection:
            if inspect(connection).get_table_names():
                return False
            Base.metadata.create_all(connection, checkfirst=False)
            _ALEMBIC_VERSION.create(connection)
            connection.execute(_ALEMBIC_VERSION.insert(), [{"version_num": head} for head in heads])
        return True

    def _stamped_at(self, heads: set[str] | None) -> bool:
        """Whether the database's ``alembic_version`` names exactly *heads* (False when unsure)."""
        if not heads:
            return False
        with self.engine.execution_options(hc_read_only=True).connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return False
            current = set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
            connection.rollback()
        return current == heads

    def _at_head(self, cfg: object) -> bool:
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        heads = set(ScriptDirectory.from_config(cfg).get_heads())  # type: ignore[arg-type]
        with self.engine.execution_options(hc_read_only=True).connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
            connection.rollback()
        return current == heads

    def is_current(self) -> bool:
        return inspect(self.engine).has_table("tickets")

    def ping(self) -> None:
        """Can we read?  Read-only, so a writer holding SQLite's lock does not make it wait."""
        try:
            with self.engine.execution_options(hc_read_only=True).connect() as connection:
                connection.execute(text("SELECT 1"))
        except (OperationalError, InterfaceError) as exc:
            raise database_error(self.safe_url, exc) from None

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


# Alembic's own version table, as its ``stamp`` creates it.
_ALEMBIC_VERSION = Table("alembic_version", MetaData(),
                         Column("version_num", String(32), nullable=False),
                         PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
_REVISION = re.compile(r"^(down_)?revision\s*(?::[^=]+)?=\s*(.+?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"""^['"]([\w.-]+)['"]$""")


def _head_revisions() -> set[str] | None:
    """The head revisions of ``migrations/versions``, read as text (None: not a plain linear chain,
    ask Alembic).  ``down_revision`` must be one quoted id or None for this to answer."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        found = dict((bool(down), value) for down, value in _REVISION.findall(path.read_text(encoding="utf-8")))
        if not found:
            continue  # __init__.py
        revision = _QUOTED.match(found.get(False, ""))
        parent = found.get(True, "None")
        if revision is None or (parent != "None" and _QUOTED.match(parent) is None):
            return None
        revisions.add(revision.group(1))
        if parent != "None":
            parents.add(_QUOTED.match(parent).group(1))  # type: ignore[union-attr]
    return (revisions - parents) or None


def rows_in(session: Session, statement: Any, values: Iterable[Any], extra: Mapping[str, Any] | None = None,
            chunk: int = 500) -> Iterator[Any]:
    """The rows of *statement* (built once, with ``bindparam("values", expanding=True)``) for *values*,
    in sorted chunks of at most *chunk* (a bounded ``IN`` list); *extra*: its other parameters.

    Why: the group commit of the SMTP intake pays a batch's look-ups (dedup, flood count, queued
    acknowledgements, bounce marks) for every group of a few mails.  Building each SELECT anew
    (columns coerced, the IN clause, its cache key) and running it through the ORM session cost
    ~0.2-0.3 ms per statement, several times the query.  A statement built once at import keeps
    its cache key; run on the session's connection it skips the ORM's execution layer.  Whatever
    the session holds unflushed is flushed first, as the ORM's autoflush would.
    """
    ordered = sorted(set(values))
    if not ordered:
        return
    session.flush()
    connection = session.connection()
    for start in range(0, len(ordered), chunk):
        yield from connection.execute(statement, {**(extra or {}), "values": ordered[start:start + chunk]})


_COUNTERS = Counter.__table__
_NEXT_NUMBER = (update(_COUNTERS).where(_COUNTERS.c.name == bindparam("counter_name"))
                .values(value=_COUNTERS.c.value + bindparam("count")).returning(_COUNTERS.c.value))


def next_number(session: Session, name: str, floor: ScalarSelect[Any] | int = 0, count: int = 1) -> int:
    """Atomically advance counter *name* by *count* (row lock on PostgreSQL, write lock on SQLite).

    Returns the last number taken: the caller owns ``result - count + 1 .. result`` (the batched
    write path takes a whole batch's numbers with one update).

    A missing counter row is created with ``INSERT ... ON CONFLICT DO NOTHING`` starting at *floor*
    (a number or a scalar subquery, e.g. the highest ticket number already stored): two instances
    racing to create it on a fresh database both go on to the UPDATE, which the row lock orders.
    A plain INSERT here made every racer but one fail with a uniqueness error (issue 11).
    """
    # A Core statement on the table, run on the connection: through the session it took the ORM's bulk-UPDATE
    # path (0.5 ms per ticket once; still ~0.15 ms per SMTP group built once).  Pending rows first, as autoflush.
    session.flush()
    result = session.connection().execute(_NEXT_NUMBER, {"counter_name": name, "count": count}).scalar_one_or_none()
    if result is None:
        start = floor if isinstance(floor, ScalarSelect) else literal(floor, BigInteger)
        session.execute(_insert_for(session)(_COUNTERS).from_select(["name", "value"], select(literal(name), start))
                        .on_conflict_do_nothing(index_elements=["name"]))
        result = session.execute(_NEXT_NUMBER, {"counter_name": name, "count": count}).scalar_one()
    return int(result)


def ensure_row(session: Session, table: Table, **key: Any) -> None:
    """Insert the row with primary key *key* unless it exists; safe when two instances race to create it."""
    session.execute(_insert_for(session)(table).values(**key).on_conflict_do_nothing(index_elements=list(key)))


def _insert_for(session: Session) -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite alike).

    Imported here: the PostgreSQL dialect package (with its asyncpg and catalog modules) cost
    ~0.13 s of every start on SQLite, where it is never used (``bench/ingest_imap.py`` counts starts)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def get_setting(session: Session, key: str) -> str | None:
    return session.scalar(select(Setting.value).where(Setting.key == key))


def ensure_setting(session: Session, key: str, value: str) -> str:
    """Store *value* under *key* unless one is already there; return what is stored."""
    existing = get_setting(session, key)
    if existing is not None:
        return existing
    session.add(Setting(key=key, value=value))
    session.flush()
    return value


def ensure_identity(store: Store, now: datetime, environ_secret: str | None = None) -> tuple[datetime, str]:
    """Record the database's birth (default go-live) and the reply-token secret on first start."""
    with store.read() as session:  # every start after the first only reads
        created, secret = get_setting(session, "created_at"), get_setting(session, "reply_secret")
    if created is None or (secret is None and not environ_secret):
        with store.session() as session:
            created = ensure_setting(session, "created_at", now.isoformat())
            secret = ensure_setting(session, "reply_secret", secrets.token_hex(32))
    return datetime.fromisoformat(created), environ_secret or str(secret)


def probe_database(url: str, base_dir: Path | None = None, timeout: float = 2.0) -> DatabaseProbe:
    """Read, then ask for the write lock, on a connection of its own that waits at most *timeout*.

    Why apart from ``Store``: ``status`` and ``/healthz`` must say "busy" (SQLite locked by another
    writer, PostgreSQL out of connections) apart from "unreachable", and answer within about
    *timeout* either way, even when the service's engine would wait ``busy_timeout`` (30 s) for the
    lock or a server that does not answer: a locked SQLite file was once reported UNREACHABLE after 40 s.
    """
    url = _resolve_sqlite_path(url, base_dir)
    try:
        engine = (_make_engine(url, timeout) if url.startswith("sqlite") else
                  create_engine(url, poolclass=NullPool,
                                connect_args={"connect_timeout": max(1, round(timeout)),
                                              "options": f"-c statement_timeout={int(timeout * 1000)}"}))
    except Exception as exc:  # noqa: BLE001 - a URL the driver refuses: report, do not crash the probe
        return DatabaseProbe("unreachable", f"[database] url: {exc}")
    try:
        with engine.execution_options(hc_read_only=True).connect() as connection:
            connection.execute(text("SELECT 1"))
        with engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE, the writer's lock
            connection.execute(text("SELECT 1"))
    except (OperationalError, InterfaceError) as exc:
        detail = " ".join(str(getattr(exc, "orig", exc)).split())[:300]
        busy = any(marker in detail.lower() for marker in _BUSY_MARKERS)
        return DatabaseProbe("busy" if busy else "unreachable", detail)
    finally:
        engine.dispose()
    return DatabaseProbe("ok")


def _resolve_sqlite_path(url: str, base_dir: Path | None) -> str:
    """Relative SQLite paths are relative to the config file's folder; create the folder."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == "sqlite:///:memory:":
        return url
    path = Path(url[len(prefix):])
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    # Owner-only before SQLite opens it: the WAL and SHM files inherit the database file's mode.
    private_file(path)
    for extra in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + extra)
        if sidecar.exists():
            restrict(sidecar)
    return prefix + str(path)


def _make_engine(url: str, busy_timeout: float) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, record):  # type: ignore[no-untyped-def]
            # WAL lets the dashboard read while intake writes; foreign keys are off by default.
            # synchronous=FULL: every commit waits for the WAL to reach the disk.  The desk acknowledges
            # a mail (MOVE to processed_folder, 250 over SMTP) right after the commit that stores it, so
            # a commit must survive a power loss or an OS crash, not only a crash of our process; under
            # NORMAL the last commits before a power loss could roll back after the mail was moved away
            # or answered 250, and be lost.  Cost: one fsync per commit (docs/performance.md, 2026-11-30).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            record.info["synchronous"] = "FULL"

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):  # type: ignore[no-untyped-def]
            # BEGIN IMMEDIATE: take the write lock up front so two writers queue instead of deadlocking;
            # readers (Store.read) begin deferred and read the last committed state (WAL).
            options = connection.get_execution_options()
            read_only = options.get("hc_read_only", False)
            if not read_only:
                # FULL unless the transaction is bookkeeping (Store.bookkeeping); the level cannot change inside
                # a transaction, so it is set here, before BEGIN, and only when it differs from the last one.
                level = "NORMAL" if options.get("hc_not_synced", False) else "FULL"
                info = connection.connection.info
                if info.get("synchronous") != level:
                    connection.exec_driver_sql(f"PRAGMA synchronous={level}")
                    info["synchronous"] = level
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # noqa: BLE001 - bad URL or missing driver: one line to the user
        raise DatabaseMisconfigured(f"[database] url {url!r}: {exc}; check [database] url") from None
