"""Shared fixtures: the clock, a config, and a database on SQLite and (when configured) PostgreSQL.

Services that tests need (PostgreSQL, Dovecot, the corpus) skip with a one-line reason
when absent, and fail instead when ``HYPERCARE_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import Config, DatabaseSettings
from tickets.clock import FrozenClock
from tickets.models import Base
from tickets.store import Store

REQUIRE_SERVICES = os.environ.get("HYPERCARE_REQUIRE_SERVICES") == "1"
PG_URL = os.environ.get("HYPERCARE_TEST_DATABASE_URL", "")


def need_service(available: bool, reason: str) -> None:
    """Skip (or fail in CI) when a real service the test needs is missing."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture
def clock() -> FrozenClock:
    """Monday 2026-11-23 09:00 UTC: go-live day in most tests."""
    return FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))


@contextmanager
def new_pg_database(prefix: str = "hc_fresh") -> Iterator[str]:
    """A brand-new PostgreSQL database (no schema, no counter row), dropped afterwards."""
    need_service(bool(PG_URL), "PostgreSQL not configured (set HYPERCARE_TEST_DATABASE_URL)")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        need_service(False, f"PostgreSQL at {PG_URL} unreachable: {exc.__class__.__name__}")
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A private PostgreSQL database for this test session (each xdist worker its own), with the schema."""
    with new_pg_database("hc_test") as url:
        store = Store(url)
        store.upgrade()
        store.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two brand-new databases of one backend (no tables), for tests that build a schema twice."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'two.db'}"
        return
    with new_pg_database() as one, new_pg_database() as two:
        yield one, two


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each database test runs twice: on a fresh SQLite file and on a clean PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hypercare.db'}"
        return
    url = request.getfixturevalue("pg_database")
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    yield url


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(db_url, tmp_path)
    s.upgrade()
    yield s
    s.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """For tests whose subject is not the database: SQLite only."""
    s = Store(f"sqlite:///{tmp_path / 'hypercare.db'}", tmp_path)
    s.upgrade()
    yield s
    s.dispose()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """Embedded defaults rooted in the test's temp dir (Maildir, attachments, database)."""
    return Config(base_dir=tmp_path, database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'hypercare.db'}"))


CORPUS_DIR = Path(os.environ.get("HYPERCARE_CORPUS", Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    need_service(CORPUS_DIR.is_dir(), f"mail corpus not found at {CORPUS_DIR} (set HYPERCARE_CORPUS)")
    return CORPUS_DIR.resolve()


@pytest.fixture
def dovecot():  # type: ignore[no-untyped-def]
    """A private real Dovecot (tests/dovecot.py), started and removed around the test."""
    from dovecot import Dovecot, dovecot_binary

    need_service(dovecot_binary() is not None, "dovecot not installed (apt-get install dovecot-imapd)")
    server = Dovecot().start()
    yield server
    server.cleanup()


@pytest.fixture
def relay():  # type: ignore[no-untyped-def]
    """A real aiosmtpd relay on a free port that captures what we send (tests/mailkit.py)."""
    from mailkit import Relay

    r = Relay().start()
    yield r
    r.stop()


@pytest.fixture
def make_app(tmp_path: Path, clock: FrozenClock):  # type: ignore[no-untyped-def]
    """Build an App on a config (default: embedded defaults rooted in tmp_path) and a shared clock."""
    import io

    from app import App

    apps = []

    def build(config: Config | None = None, db: str | None = None) -> App:
        cfg = config or Config(base_dir=tmp_path)
        if db is not None:
            import dataclasses

            cfg = dataclasses.replace(cfg, database=DatabaseSettings(url=db))
        app = App(cfg, clock, out=io.StringIO(), err=io.StringIO(), environ={})
        apps.append(app)
        return app

    yield build
    for app in apps:
        if "store" in app.__dict__:
            app.store.dispose()


@pytest.fixture
def desk(make_app, tmp_path, relay, db_url):  # type: ignore[no-untyped-def]
    """The desk behind its real SMTP intake and relay, on SQLite and PostgreSQL (tests/reply_kit.py)."""
    from reply_kit import start_desk

    yield from start_desk(make_app, tmp_path, relay, db_url)
