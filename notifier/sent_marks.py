"""Recording each mail the relay accepted as sent, on a connection and a thread of their own.

Why: a crash must resend at most the one mail in flight, so every accepted mail is recorded at once (one
autocommitted UPDATE of ``sent_at``).  Waiting for that UPDATE after each mail made the outbox 2.27x slower
than a bare smtplib loop on PostgreSQL (the target is 2x).  Here the UPDATE of mail *k* runs while mail
*k+1*'s MAIL FROM and RCPT TO are on the wire, and mail *k+1*'s DATA waits for it (``settle``, called by
the transport just before DATA): the relay can never accept a mail while an earlier one is unrecorded, so
a crash still leaves at most one accepted mail without its record (one extra copy per crash).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from sqlalchemy import Connection

from tickets.models import OutboxItem
from tickets.store import Store, database_error

# Only ``sent_at`` (no indexed column, so PostgreSQL updates the row in place); a row marked so is never
# claimed again, and the outbox folds the batch's marked rows into ``sent`` in one statement.
_MARK_SQL_SQLITE = "UPDATE outbox SET sent_at = ? WHERE id = ?"
_MARK_SQL_PG = "UPDATE outbox SET sent_at = %s WHERE id = %s"

Mark = Callable[[int, datetime], None]


def mark_writer(connection: Connection) -> Mark:
    """One prepared, autocommitted UPDATE per mark on *connection*'s driver connection.

    Why the driver's connection: the mark runs once per message sent, and SQLAlchemy's begin/commit
    around it cost as much as the UPDATE.  On SQLite the connection autocommits already (the pool sets
    ``isolation_level = None``); on PostgreSQL it is switched to autocommit and its commits do not wait
    for the WAL flush (``synchronous_commit`` off for this session): a crash of *our* process loses no
    mark, a crash of the database server may forget the last fraction of a second of them (those mails
    go out once more).  Figures: docs/performance.md.
    """
    to_db = OutboxItem.__table__.c.sent_at.type.bind_processor(connection.dialect)
    if connection.dialect.name != "postgresql":
        sqlite = connection.connection.driver_connection
        # As on PostgreSQL below: a mark does not wait for the disk (the database runs synchronous=FULL, an
        # fsync per commit, which made the outbox 2.9x slower): a power loss may forget the last marks, whose
        # mails then go out once more; a crash of our process loses none.  The next transaction on this
        # connection is FULL again (tickets.store sets the level before each BEGIN), ``SentMarks`` resets it.
        sqlite.execute("PRAGMA synchronous=NORMAL")
        connection.connection.info["synchronous"] = "NORMAL"

        def mark_sqlite(item_id: int, at: datetime) -> None:
            sqlite.execute(_MARK_SQL_SQLITE, (to_db(at) if to_db else at, item_id))

        return mark_sqlite
    connection.execution_options(isolation_level="AUTOCOMMIT")
    with connection.begin():
        connection.exec_driver_sql("SET synchronous_commit TO OFF")
    cursor = connection.connection.driver_connection.cursor()

    def mark_postgres(item_id: int, at: datetime) -> None:
        cursor.execute(_MARK_SQL_PG, (to_db(at) if to_db else at, item_id), prepare=True)

    return mark_postgres


class SentMarks:
    """A batch's "sent" marks, written one at a time by a thread with its own database connection.

    ``mark`` hands a mark over and returns at once; ``settle`` waits until the last one is committed
    and raises its error (a database error as ``DatabaseUnavailable``: try later).  At most one mark
    is ever outstanding: ``mark`` settles the previous one first.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._requests: queue.SimpleQueue[tuple[int, datetime] | None] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._outstanding = False
        self._thread = threading.Thread(target=self._run, name="hypercare-sent-marks", daemon=True)

    def __enter__(self) -> SentMarks:
        self._thread.start()
        self._outstanding = True  # the connection being opened: its failure is the first result
        try:
            self.settle()
        except BaseException:
            self._thread.join()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        try:
            if kind is None:
                self.settle()  # the batch's last mark is committed before its rows are folded
            elif self._outstanding:
                self._outstanding = False
                self._results.get()  # already failing: its own error is the one to report
        finally:
            self._requests.put(None)
            self._thread.join()

    def mark(self, item_id: int, at: datetime) -> None:
        """Record *item_id* as sent at *at*, in the background (after the previous mark has settled)."""
        self.settle()
        self._requests.put((item_id, at))
        self._outstanding = True

    def settle(self) -> None:
        """Wait until the last mark handed over is committed; raise its error if it failed."""
        if not self._outstanding:
            return
        self._outstanding = False
        error = self._results.get()
        if error is not None:
            raise error

    def _run(self) -> None:
        try:
            with self.store.engine.connect() as connection:
                write = mark_writer(connection)
                self._results.put(None)
                while (request := self._requests.get()) is not None:
                    try:
                        write(*request)
                    except Exception as exc:  # noqa: BLE001 - handed to the sending thread, which raises it
                        self._results.put(self._failure(connection, exc))
                    else:
                        self._results.put(None)
                if connection.dialect.name == "postgresql":
                    connection.exec_driver_sql("RESET synchronous_commit")
                else:
                    connection.connection.driver_connection.execute("PRAGMA synchronous=FULL")
                    connection.connection.info["synchronous"] = "FULL"
        except Exception as exc:  # noqa: BLE001 - the connection could not be opened (or reset): the sender's error
            self._results.put(self._failure(None, exc))

    def _failure(self, connection: Connection | None, exc: Exception) -> Exception:
        """A driver error as the desk's "database unavailable" (exit 75); anything else as it is."""
        dbapi = connection.dialect.dbapi if connection is not None else None
        if dbapi is not None and isinstance(exc, dbapi.Error):
            return database_error(self.store.safe_url, exc)
        return exc
