"""The step interface of the Supabase import: how one source table comes across.

A step reads one source table (``name``, e.g. ``auth.users`` or ``public.listings``) and turns
each of its rows into Hearth rows. The runner (``models.imports.runner``) walks the steps in order
and in chunks; for each row it looks up the import map, skips the row without writing when its
checksum did not change, and otherwise calls ``apply``. A step never writes the import map, the
run or the report itself: it returns an ``Outcome`` and the runner records it in the chunk's
transaction, so a run killed half-way resumes without duplicates.

Steps know the source only through ``Source`` (a protocol that ``services.supabase_source``
implements), so the models never import the adapter. Other collaborators a step needs (the
storage source of the files, Hearth's storage and scanner) come in ``StepContext.collaborators``
by name, built by the composition root of the process that runs the import (CLI or worker).

Steps for app tables come from the mapping file: ``models.imports.mapping`` provides
``parse_mapping(text) -> Mapping`` (raising ``MappingError`` whose ``problems`` lists every
problem) and ``Mapping.steps() -> list[Step]`` in the order they must run. The runner validates
every step with ``check_columns`` against the source before anything is written (a mapping step
reports there the columns neither mapped nor ignored, by name).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

# Outcome kinds. "inserted"/"updated"/"unchanged" came across; "skipped"/"failed" did not.
INSERTED, UPDATED, UNCHANGED, SKIPPED, FAILED = "inserted", "updated", "unchanged", "skipped", "failed"
KINDS = (INSERTED, UPDATED, UNCHANGED, SKIPPED, FAILED)


class Source(Protocol):
    """A read-only view of the source database inside one snapshot (``services.supabase_source``)."""

    snapshot_at: datetime.datetime
    # The source server's ``server_version_num`` (150004 for 15.4).
    server_version: int

    def tables(self) -> set[str]:
        """Every ``schema.table`` the source has."""
        ...

    def columns(self, table: str) -> list[str]:
        """The column names of ``schema.table`` in table order; empty when there is no such table."""
        ...

    def count(self, table: str, where: str = "", params: Sequence[Any] = ()) -> int: ...

    def stream(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        where: str = "",
        params: Sequence[Any] = (),
        order_by: Sequence[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """Rows as dicts, fetched in batches by a server-side cursor; ``where`` uses ``%s`` parameters.

        ``table``, ``columns`` and ``order_by`` are identifiers, quoted by the source, never
        interpolated as SQL.
        """
        ...

    def copy_rows(self, select: str, params: Sequence[Any] = ()) -> Iterator[bytes]:
        """The rows of a step's own ``select`` as binary COPY rows, streamed (a staged step reads this way)."""
        ...


@dataclasses.dataclass(frozen=True)
class SourceRow:
    """One source row: its key (text, unique within the table), its data, its checksum and its place.

    ``position`` is the ordering value the step streams by (JSON-able): the runner stores the last
    one of each committed chunk as the checkpoint and hands it back to ``rows(after=...)`` on resume.
    """

    key: str
    data: dict[str, Any]
    checksum: str
    position: Any


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What ``apply`` did with one row.

    ``target_id`` is the Hearth id of the row written (or found) for ``inserted``/``updated``.
    ``reason`` is a short code (``anonymous``, ``duplicate-email``, ``missing-reference``, ...);
    on ``inserted``/``updated`` a reason means "came across, but the operator must know"
    (``no-password``) and is reported too. ``detail`` is for people and never holds a secret.
    """

    kind: str
    target_id: str | None = None
    reason: str | None = None
    detail: str | None = None

    @classmethod
    def inserted(cls, target_id, reason: str | None = None, detail: str | None = None) -> Outcome:
        return cls(INSERTED, str(target_id), reason, detail)

    @classmethod
    def updated(cls, target_id, reason: str | None = None, detail: str | None = None) -> Outcome:
        return cls(UPDATED, str(target_id), reason, detail)

    @classmethod
    def unchanged(cls, target_id=None) -> Outcome:
        return cls(UNCHANGED, str(target_id) if target_id is not None else None)

    @classmethod
    def skipped(cls, reason: str, detail: str | None = None) -> Outcome:
        return cls(SKIPPED, None, reason, detail)

    @classmethod
    def failed(cls, reason: str, detail: str | None = None) -> Outcome:
        return cls(FAILED, None, reason, detail)

    @property
    def came_across(self) -> bool:
        return self.kind in (INSERTED, UPDATED, UNCHANGED)


@dataclasses.dataclass
class StepContext:
    """What ``apply`` sees besides the row.

    ``previous_id``: the Hearth id the import map holds for this row (None on first sight).
    ``resolve(source_table, source_key)``: the Hearth id of an already imported source row, for
    foreign keys (None when that row was not imported: report ``missing-reference``).
    ``resolve_many(source_table, source_keys)``: the same for many keys in one read, as a dict of the
    imported ones (a step that applies a batch uses it).
    ``options``: the run's options (no secrets); ``run_id``: the current run; ``snapshot_at``: its
    source snapshot (the import map's ``last_seen_at``). ``memo``: what a step keeps for the rest of
    this pass over its table (a new context, empty, for each pass).
    """

    run_id: str
    options: dict[str, Any]
    resolve: Callable[[str, str], str | None]
    resolve_many: Callable[[str, Iterable[str]], dict[str, str]] | None = None
    previous_id: str | None = None
    dry_run: bool = False
    collaborators: dict[str, Any] = dataclasses.field(default_factory=dict)
    snapshot_at: datetime.datetime | None = None
    memo: dict[str, Any] = dataclasses.field(default_factory=dict)


class Step:
    """Base class of a step. Subclasses set ``name`` and ``target`` and implement ``rows``/``apply``.

    ``required`` lists the source columns the step reads; ``check_columns`` reports the missing
    ones (and steps driven by a mapping also report unmapped ones) before anything is written.
    ``updated_column``: the source column a delta (``--since``) filters on; None means every row
    is read and compared by checksum.
    """

    name: str = ""
    target: str = ""
    required: tuple[str, ...] = ()
    updated_column: str | None = None
    # A step whose ``apply`` also writes outside the database (a file's bytes) is applied row by row,
    # each row in its own savepoint: a refused batch applied again would write all of those again.
    writes_outside_database: bool = False
    # A staged step (``models.imports.staged``) is read with ``copy_rows`` and applied in SQL, a chunk
    # at a time: it implements ``staged_select``, ``position_of``, ``stage_table``/``stage_columns``
    # and ``apply_staged`` instead of ``rows`` and ``apply``.
    staged: bool = False
    stage_table: str = ""
    stage_columns: tuple[tuple[str, str], ...] = ()

    def staged_select(self, source: Source, since: datetime.datetime | None, after: Any = None) -> tuple[str, list]:
        """The source SELECT of a staged step (its columns are ``stage_columns`` but ``ord``), and its parameters."""
        raise NotImplementedError

    def position_of(self, row: bytes) -> Any:
        """The ``position`` (JSON-able) of one binary COPY row of ``staged_select``, for the checkpoint."""
        raise NotImplementedError

    def apply_staged(self, first: int, last: int, ctx: StepContext) -> list[tuple[str, str | None, int]]:
        """Apply the staged rows ``first..last`` (by ``ord``), their import map entries and report rows included.

        Returns their counts, ``(kind, reason, rows)`` by outcome and reason.
        """
        raise NotImplementedError

    def check_columns(self, available: Sequence[str]) -> list[str]:
        """Problems with the source's columns, one human sentence each (empty: fine)."""
        have = set(available)
        if not have:
            return [f"{self.name}: the source has no such table"]
        return [f"{self.name}: missing column {c}" for c in self.required if c not in have]

    def count(self, source: Source, since: datetime.datetime | None) -> int:
        """How many rows ``rows`` will yield (for progress); may be an estimate."""
        if since is not None and self.updated_column:
            return source.count(self.name, f'"{self.updated_column}" > %s', (since,))
        return source.count(self.name)

    def rows(self, source: Source, since: datetime.datetime | None, after: Any = None) -> Iterator[SourceRow]:
        """The rows to import, in a stable order, starting after ``after`` (a ``position``)."""
        raise NotImplementedError

    def keys(self, source: Source) -> Iterator[str]:
        """Every source key of the table (for detecting rows deleted at the source)."""
        raise NotImplementedError

    def apply(self, row: SourceRow, ctx: StepContext) -> Outcome:
        raise NotImplementedError

    def apply_batch(self, rows: list[tuple[SourceRow, str | None]], ctx: StepContext) -> list[Outcome] | None:
        """Apply a chunk's rows (each with its ``previous_id``) at once: one outcome per row, in order.

        None (the default) means the step applies row by row. The runner calls this inside one
        savepoint; when it raises, the savepoint is rolled back and every row goes through ``apply``
        in its own savepoint, so the outcomes must be the ones ``apply`` would give in that order.
        """
        return None

    def delete(self, target_id: str, ctx: StepContext) -> Outcome:
        """Apply a deletion at the source (``--apply-deletes``); by default it is only reported."""
        return Outcome.skipped("deleted-at-source", "this table does not apply deletions")


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def _canonical_leaf(value: Any) -> Any:
    """What ``json.dumps`` cannot write itself, in the form ``_canonical`` gives it."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


def checksum(data: dict[str, Any]) -> str:
    """A stable SHA-256 of a source row (keys sorted, values in a canonical text form).

    The same text as ``json.dumps(_canonical(data), sort_keys=True, ...)``, written without first
    copying the row: ``json`` walks it and asks ``_canonical_leaf`` for the values it cannot write.
    Rows come from the database, whose column names and JSON object keys are text; a mapping with
    other keys (which ``json`` would sort differently, or not at all) goes through ``_canonical``.
    """
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_canonical_leaf)
    except TypeError:
        text = json.dumps(_canonical(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def source_row(key: Any, data: dict[str, Any], position: Any = None) -> SourceRow:
    """A ``SourceRow`` with its checksum computed; ``position`` defaults to the key."""
    return SourceRow(str(key), data, checksum(data), _canonical(position if position is not None else key))


__all__ = [
    "FAILED",
    "INSERTED",
    "KINDS",
    "SKIPPED",
    "UNCHANGED",
    "UPDATED",
    "Outcome",
    "Source",
    "SourceRow",
    "Step",
    "StepContext",
    "checksum",
    "source_row",
]
