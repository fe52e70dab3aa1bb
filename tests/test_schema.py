"""The schema the migrations build is the schema the models describe, on SQLite and PostgreSQL.

Why: queries are written against the models (``tickets/models.py``) and their indexes, while a database is
built by the migrations (``tickets/migrations``); an index declared in one and not the other is a query
that silently reads the whole table (issue 17: the flood guard's count once read every ticket a sender
ever opened).  Alembic's own comparison tells any column, type, index or constraint apart.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from tickets.models import Base
from tickets.store import MIGRATIONS_DIR, Store


def migrate(url: str, revision: str = "head") -> None:
    """The migrations up to *revision* run by Alembic on *url*, as an existing desk got its schema."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    engine = create_engine(url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    engine.dispose()


def schema(url: str) -> dict[str, Any]:
    """Everything the inspector sees of every table: columns with types, nullability and defaults, keys,
    indexes, unique constraints, foreign keys; and the Alembic revision."""
    engine = create_engine(url)
    with engine.connect() as connection:
        seen = inspect(connection)
        tables = {name: (
            # By name: a migration adds a column at the end, the models list it where it belongs.
            sorted((c["name"], str(c["type"]), c["nullable"], str(c["default"])) for c in seen.get_columns(name)),
            seen.get_pk_constraint(name)["constrained_columns"],
            sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in seen.get_indexes(name)),
            sorted((tuple(u["column_names"]),) for u in seen.get_unique_constraints(name)),
            sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]),
                    str(f.get("options", {}).get("ondelete"))) for f in seen.get_foreign_keys(name)),
        ) for name in seen.get_table_names()}
        revision = list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    engine.dispose()
    return {"tables": tables, "revision": revision}


def test_the_migrated_schema_is_the_models_schema(empty_databases):
    migrated, _ = empty_databases
    migrate(migrated)
    engine = create_engine(migrated)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_a_new_database_is_created_from_the_models_exactly_as_the_migrations_build_it(empty_databases):
    """A new database skips Alembic (Store.upgrade creates the models' tables and stamps the head): that
    schema, defaults included, must be the one every existing desk got from the migrations (that it skips
    Alembic is tests/test_fast_start.py)."""
    migrated, created = empty_databases
    migrate(migrated)
    store = Store(created)
    store.upgrade()
    store.upgrade()  # current: nothing to do
    store.dispose()
    assert schema(created) == schema(migrated)


def test_the_flood_count_reads_the_index_alone(sqlite_store):
    """A sender's tickets of the last hour, counted on ``(reporter, created_at)`` without the table's rows."""
    query = ("EXPLAIN QUERY PLAN SELECT reporter, count(id) FROM tickets WHERE reporter IN ('a@x', 'b@y') "
             "AND created_at > '2026-11-30 00:00:00' GROUP BY reporter")
    with sqlite_store.engine.connect() as connection:
        plan = " ".join(str(row[-1]) for row in connection.execute(text(query)))
    assert "COVERING INDEX ix_tickets_reporter_created" in plan


def test_tickets_carry_no_index_another_one_already_begins_with():
    """Every index of ``tickets`` costs each new ticket a write; one whose columns begin another's serves nothing."""
    indexes = [tuple(c.name for c in index.columns) for index in Base.metadata.tables["tickets"].indexes]
    redundant = [a for a in indexes for b in indexes if a != b and b[:len(a)] == a]
    assert redundant == []
