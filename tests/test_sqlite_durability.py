"""Commits are durable across power loss: SQLite in WAL with ``synchronous=FULL`` on every connection.

Why it matters: the desk moves a mail to ``processed_folder`` (IMAP) or answers 250 (SMTP) right after the
commit that stored it.  Under ``synchronous=NORMAL`` in WAL mode a commit is not synced, so a power loss
or OS crash could roll back mail the sender or the mailbox has already let go of.
"""

from __future__ import annotations

from sqlalchemy import text

from tickets.store import Store

FULL = 2  # what ``PRAGMA synchronous`` reads back as: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def _pragmas(connection) -> tuple[str, int]:  # type: ignore[no-untyped-def]
    return (connection.execute(text("PRAGMA journal_mode")).scalar(),
            connection.execute(text("PRAGMA synchronous")).scalar())


def test_every_fresh_connection_is_wal_and_synchronous_full(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'hc.db'}")
    store.upgrade()
    store.dispose()  # the pool's connections are gone: what follows is opened now
    with store.engine.connect() as connection:
        assert _pragmas(connection) == ("wal", FULL)
    with store.session() as session:  # the writers' sessions (BEGIN IMMEDIATE)
        assert _pragmas(session.connection()) == ("wal", FULL)
    with store.read() as session:  # the readers' sessions
        assert _pragmas(session.connection()) == ("wal", FULL)
    again = Store(f"sqlite:///{tmp_path / 'hc.db'}")  # a second process's engine on an existing file
    with again.engine.connect() as connection:
        assert _pragmas(connection) == ("wal", FULL)
    again.dispose()
    store.dispose()


def test_bookkeeping_alone_is_not_synced_and_the_next_transaction_is_again(tmp_path):
    """``Store.bookkeeping`` (a mailbox's progress, its health): NORMAL for that transaction only.  A connection
    back from the pool is not reconfigured (``connect`` runs once): every other transaction sets FULL again."""
    store = Store(f"sqlite:///{tmp_path / 'hc.db'}")
    store.upgrade()
    for _ in range(2):
        with store.bookkeeping() as session:
            assert _pragmas(session.connection()) == ("wal", 1)
        with store.session() as session:  # the same pooled connection: FULL again before its BEGIN
            assert _pragmas(session.connection()) == ("wal", FULL)
        with store.bookkeeping() as session:
            session.execute(text("SELECT 1"))
        with store.engine.connect() as connection:
            assert _pragmas(connection) == ("wal", FULL)
    store.dispose()


def test_bookkeeping_on_postgresql_does_not_wait_for_the_wal_flush_and_the_rest_does(pg_database):
    store = Store(pg_database)
    for _ in range(2):
        with store.bookkeeping() as session:
            assert session.execute(text("SHOW synchronous_commit")).scalar() == "off"
        with store.session() as session:  # SET LOCAL: the same pooled connection is back to the default
            assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"
    store.dispose()


def test_sent_marks_do_not_wait_for_the_disk_and_hand_back_a_full_connection(tmp_path):
    """A "sent" mark lost to a power loss sends one mail again (as on PostgreSQL, ``synchronous_commit`` off):
    the marks' connection runs NORMAL, and whatever uses it next is FULL again."""
    from notifier.sent_marks import SentMarks, mark_writer

    store = Store(f"sqlite:///{tmp_path / 'hc.db'}")
    store.upgrade()
    store.dispose()
    with store.engine.connect() as connection:
        mark_writer(connection)
        driver = connection.connection.driver_connection
        assert driver.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert _pragmas(connection) == ("wal", FULL)  # a statement through SQLAlchemy begins FULL again
    with SentMarks(store):
        pass
    with store.engine.connect() as connection:  # the pool's one connection, after the marks' thread
        assert connection.connection.driver_connection.execute("PRAGMA synchronous").fetchone()[0] == FULL
    store.dispose()


def test_a_health_probe_does_not_let_another_process_delete_the_live_wal(tmp_path):
    """The daemon's own commits must stay in the database when ``/healthz`` ran and another process came and went.

    Found by ``make run`` (2026-11-30): ``/healthz`` probed the database through ``private_file``, which opened
    and closed the live database file; closing any descriptor of a file drops every POSIX lock the process
    holds on it, SQLite's included.  A ``hypercare show`` in a second process then believed it was the last
    user, checkpointed and deleted the WAL, and the daemon's next commits went into the deleted file: a mail
    answered 250 and logged as created was not in the database.
    """
    import subprocess
    import sys

    from tickets.store import probe_database

    path = tmp_path / "hc.db"
    url = f"sqlite:///{path}"
    store = Store(url)
    store.upgrade()
    with store.session() as session:
        session.execute(text("CREATE TABLE probe_rows (n INTEGER)"))
        session.execute(text("INSERT INTO probe_rows VALUES (1)"))
    with store.read() as session:  # the pool keeps this connection, and its locks, open: a running daemon
        assert session.execute(text("SELECT count(*) FROM probe_rows")).scalar() == 1
    assert probe_database(url).state == "ok"  # what /healthz does, in the daemon's process
    other = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "c.execute('SELECT count(*) FROM probe_rows').fetchone(); c.close()")
    subprocess.run([sys.executable, "-c", other, str(path)], check=True, timeout=60)  # `hypercare show`
    with store.session() as session:  # the daemon stores the next mail
        session.execute(text("INSERT INTO probe_rows VALUES (2)"))
    seen = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(c.execute('SELECT count(*) FROM probe_rows').fetchone()[0])")
    out = subprocess.run([sys.executable, "-c", seen, str(path)], check=True, timeout=60,
                         capture_output=True, text=True)
    assert out.stdout.strip() == "2", "a commit of the daemon went into a WAL another process had deleted"
    store.dispose()
