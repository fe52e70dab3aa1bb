"""The schema the migrations build is the schema the models describe, on SQLite and PostgreSQL.

Why: queries are written against the models (``tickets/models.py``) and their indexes, while a database is
built by the migrations (``tickets/migrations``); an index declared in one and not the other is a query
that silently reads the whole table (issue 17: the flood guard's count once read every ticket a sender
ever opened).  Alembic's own comparison tells any column, type, index or constraint apart.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from tickets.models import Base


def test_the_migrated_schema_is_the_models_schema(store):
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


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
