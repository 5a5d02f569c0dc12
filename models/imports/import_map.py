"""The import map: each source row (table, key) → the Hearth row it became, and its checksum.

It is what makes the import idempotent (an unchanged checksum means nothing to write), resumable
(a resumed run finds what the killed one committed) and able to resolve foreign keys through
source ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from peewee import CompositeKey, TextField, UUIDField

from models.base import BaseModel, DateTimeTZField
from models.db import db


class ImportMapEntry(BaseModel):
    source_table = TextField()
    source_key = TextField()
    target_table = TextField()
    target_id = TextField(null=True)
    skipped_reason = TextField(null=True)
    checksum = TextField()
    first_run_id = UUIDField()
    last_run_id = UUIDField()
    last_seen_at = DateTimeTZField()
    deleted_at_source = DateTimeTZField(null=True)
    password_link_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "import_map"
        primary_key = CompositeKey("source_table", "source_key")


_ON_CONFLICT = """
ON CONFLICT (source_table, source_key) DO UPDATE SET
    target_id = COALESCE(EXCLUDED.target_id, CASE WHEN EXCLUDED.skipped_reason IS NULL THEN m.target_id END),
    skipped_reason = EXCLUDED.skipped_reason, checksum = EXCLUDED.checksum, last_run_id = EXCLUDED.last_run_id,
    last_seen_at = EXCLUDED.last_seen_at, deleted_at_source = NULL
"""
_UPSERT = (
    """
INSERT INTO import_map AS m (source_table, source_key, target_table, target_id, skipped_reason, checksum,
                             first_run_id, last_run_id, last_seen_at)
SELECT %(table)s, u.key, %(target)s, u.target_id, u.skipped_reason, u.checksum, %(run)s, %(run)s, %(seen)s
FROM unnest(%(keys)s::text[], %(ids)s::text[], %(reasons)s::text[], %(checksums)s::text[])
    AS u(key, target_id, skipped_reason, checksum)
"""
    + _ON_CONFLICT
)
# A staged step's writes (``models.imports.users_rules``): data-modifying CTEs of its statement, from its
# ``outcomes`` (ord, source_key, checksum, mapped, kind, target_id, reason, detail) and ``fresh`` (no row of the
# statement is mapped: known ones are not looked for). New entries are inserted
# (no speculative insertion per row); known ones take the upsert's update, found through each outcome's key
# (an ``UPDATE ... FROM outcomes`` may be planned as a scan of the whole table's map). A chunk never holds a
# source key twice.
_OUTCOME_ROWS = """
    INSERT INTO import_map AS m (source_table, source_key, target_table, target_id, skipped_reason, checksum,
                                 first_run_id, last_run_id, last_seen_at)
    SELECT %(table)s, o.source_key, %(target)s, o.target_id, CASE WHEN o.kind = 'skipped' THEN o.reason END,
           o.checksum, %(run)s, %(run)s, %(seen)s
    FROM outcomes AS o"""
OUTCOME_WRITES = (
    f"map_inserted AS ({_OUTCOME_ROWS} WHERE o.kind IN ('inserted', 'updated', 'skipped') AND NOT o.mapped\n),\n"
    f"map_updated AS ({_OUTCOME_ROWS} WHERE NOT %(fresh)s AND o.mapped"
    " AND o.kind IN ('inserted', 'updated', 'skipped', 'unchanged')"
    f"{_ON_CONFLICT})"
)


class MapState(NamedTuple):
    """What the runner needs of a source row's entry: is it unchanged, and what did it become."""

    checksum: str
    target_id: str | None
    deleted_at_source: bool


class ImportMap:
    """Reads and writes of the import map, batched per chunk."""

    @staticmethod
    def states(source_table: str, keys: list[str]) -> dict[str, MapState]:
        """The entries of these source keys, by key, in one read (a chunk's worth)."""
        if not keys:
            return {}
        cursor = db.execute_sql(
            "SELECT source_key, checksum, target_id, deleted_at_source IS NOT NULL FROM import_map"
            " WHERE source_table = %s AND source_key = ANY(%s)",
            (source_table, keys),
        )
        return {key: MapState(checksum, target_id, deleted) for key, checksum, target_id, deleted in cursor}

    @staticmethod
    def entries(source_table: str, keys: Iterable[str]) -> dict[str, ImportMapEntry]:
        keys = list(keys)
        if not keys:
            return {}
        rows = ImportMapEntry.select().where(
            (ImportMapEntry.source_table == source_table) & (ImportMapEntry.source_key.in_(keys))
        )
        return {row.source_key: row for row in rows}

    @staticmethod
    def resolve(source_table: str, source_key: str) -> str | None:
        """The Hearth id of an imported source row; None when it was not imported (or was deleted)."""
        row = (
            ImportMapEntry.select(ImportMapEntry.target_id)
            .where(
                (ImportMapEntry.source_table == source_table)
                & (ImportMapEntry.source_key == str(source_key))
                & ImportMapEntry.deleted_at_source.is_null()
            )
            .first()
        )
        return row.target_id if row else None

    @staticmethod
    def imported(source_table: str, source_key: str) -> bool:
        """Whether the source row became a Hearth row that is still there (deleted at the source or not)."""
        return (
            ImportMapEntry.select()
            .where(
                (ImportMapEntry.source_table == source_table)
                & (ImportMapEntry.source_key == str(source_key))
                & ImportMapEntry.target_id.is_null(False)
            )
            .exists()
        )

    @staticmethod
    def resolve_many(source_table: str, source_keys: Iterable[str]) -> dict[str, str]:
        """``resolve`` for many keys in one read: source key → Hearth id, for the imported ones only."""
        keys = list(dict.fromkeys(str(key) for key in source_keys))
        if not keys:
            return {}
        cursor = db.execute_sql(
            "SELECT source_key, target_id FROM import_map WHERE source_table = %s AND source_key = ANY(%s)"
            " AND deleted_at_source IS NULL AND target_id IS NOT NULL",
            (source_table, keys),
        )
        return dict(cursor.fetchall())

    @staticmethod
    def record(rows: list[tuple], run_id, seen_at) -> None:
        """Upsert ``(source_table, source_key, target_table, target_id, skipped_reason, checksum)`` rows.

        One statement per chunk (an array per column); a chunk never holds the same source key twice.
        """
        by_table: dict[tuple[str, str], list[tuple]] = {}
        for table, key, target, target_id, reason, digest in rows:
            by_table.setdefault((table, target), []).append((key, target_id, reason, digest))
        for (table, target), entries in by_table.items():
            keys, ids, reasons, checksums = (list(column) for column in zip(*entries, strict=True))
            db.execute_sql(
                _UPSERT,
                {
                    "table": table,
                    "target": target,
                    "run": str(run_id),
                    "seen": seen_at,
                    "keys": keys,
                    "ids": ids,
                    "reasons": reasons,
                    "checksums": checksums,
                },
            )

    @staticmethod
    def touch(source_table: str, keys: list[str], run_id, seen_at) -> int:
        """Mark rows as still present at the source in this run (unchanged rows, or a delta's key pass)."""
        if not keys:
            return 0
        cursor = db.execute_sql(
            "UPDATE import_map SET last_run_id = %s, last_seen_at = %s, deleted_at_source = NULL"
            " WHERE source_table = %s AND source_key = ANY(%s)",
            (run_id, seen_at, source_table, keys),
        )
        return int(cursor.rowcount)

    @staticmethod
    def missing(
        source_table: str, run_id, *, limit: int = 500, after: str = "", apply: bool = False
    ) -> list[ImportMapEntry]:
        """Imported rows this run did not see at the source (deleted there), by key.

        Those already reported in an earlier run come again only when deletions are applied now.
        """
        pending = ImportMapEntry.deleted_at_source.is_null()
        if apply:
            pending = pending | ImportMapEntry.deleted_at_source.is_null(False)
        return list(
            ImportMapEntry.select()
            .where(
                (ImportMapEntry.source_table == source_table)
                & (ImportMapEntry.last_run_id != run_id)
                & ImportMapEntry.target_id.is_null(False)
                & (ImportMapEntry.source_key > after)
                & pending
            )
            .order_by(ImportMapEntry.source_key)
            .limit(limit)
        )

    @staticmethod
    def forget_target(source_table: str, source_key: str) -> None:
        """The Hearth row was deleted (``--apply-deletes``): the source row no longer maps to it."""
        ImportMapEntry.update(target_id=None, skipped_reason="deleted-at-source").where(
            (ImportMapEntry.source_table == source_table) & (ImportMapEntry.source_key == source_key)
        ).execute()

    @staticmethod
    def mark_deleted(source_table: str, keys: list[str], at) -> None:
        if keys:
            db.execute_sql(
                "UPDATE import_map SET deleted_at_source = %s"
                " WHERE source_table = %s AND source_key = ANY(%s) AND deleted_at_source IS NULL",
                (at, source_table, keys),
            )


__all__ = ["OUTCOME_WRITES", "ImportMap", "ImportMapEntry", "MapState"]
