"""The migrations build the schema from nothing, take it all down again, and rebuild it."""

from __future__ import annotations

import pytest

from models import migrate
from models.db import make_database
from tests.conftest import create_database, drop_database

HISTORY = "schema_migrations"


@pytest.fixture
def empty_database():
    name, url = create_database("hearth_migrate")
    database = make_database(url, max_connections=2)
    yield database
    database.close_all()
    drop_database(name)


def _schema(database) -> dict[str, list[str]]:
    """Every table with its columns and indexes: enough to tell two schemas apart."""
    rows = database.execute_sql("""
        SELECT c.relname, c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'i', 'S')
        ORDER BY 1, 3
    """).fetchall()
    schema: dict[str, list[str]] = {}
    for table, kind, column, type_, not_null in rows:
        schema.setdefault(f"{kind}:{table}", []).append(f"{column} {type_} {'NOT NULL' if not_null else ''}")
    return schema


def test_upgrade_downgrade_to_zero_and_upgrade_again(empty_database):
    database = empty_database
    with database.connection_context():
        names = [name for name, _ in migrate.status(database)]
        assert names and names == sorted(names)
        assert names[0] == "0001_accounts"

        assert migrate.upgrade(database) == names
        assert migrate.upgrade(database) == []  # nothing left to apply
        built = _schema(database)
        tables = {key.split(":", 1)[1] for key in built if key.startswith("r:")}
        assert {
            "users",
            "auth_sessions",
            "refresh_tokens",
            "account_tokens",
            "audit_log",
            "jobs",
            "job_effects",
            HISTORY,
        } <= tables
        assert all(applied is not None for _, applied in migrate.status(database))

        assert migrate.downgrade(database, names[0]) == list(reversed(names))
        left = {key.split(":", 1)[1] for key in _schema(database) if key.startswith("r:")}
        assert left == {HISTORY}
        assert all(applied is None for _, applied in migrate.status(database))

        assert migrate.upgrade(database) == names
        assert _schema(database) == built


def test_downgrade_without_a_target_reverts_only_the_newest(empty_database):
    database = empty_database
    with database.connection_context():
        names = migrate.upgrade(database)
        assert migrate.downgrade(database) == [names[-1]]
        assert [applied is not None for _, applied in migrate.status(database)] == [True] * (len(names) - 1) + [False]
        assert migrate.upgrade(database) == [names[-1]]
