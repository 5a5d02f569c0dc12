"""Schema migrations: numbered scripts in ``models/migrations`` run by peewee's own runner."""

from __future__ import annotations

import pathlib

from playhouse.migrations import Runner

MIGRATIONS_DIR = pathlib.Path(__file__).resolve().parent / "migrations"


def runner(database) -> Runner:
    return Runner(database, directory=str(MIGRATIONS_DIR), table_name="schema_migrations")


def upgrade(database, target: str | None = None) -> list[str]:
    """Apply pending migrations (up to ``target``); returns the names applied."""
    return runner(database).up(target)


def downgrade(database, target: str | None = None) -> list[str]:
    """Revert the newest migration, or every one back through ``target``."""
    return runner(database).down(target)


def status(database) -> list[tuple[str, object]]:
    return [(m.name, m.applied) for m in runner(database).status()]


def new(database, name: str) -> str:
    return runner(database).create(name)
