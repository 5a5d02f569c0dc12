"""The step of each app table a mapping file names: read its rows, map them, write them to their target."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from models.imports import transforms
from models.imports.listing_batch import write_listings
from models.imports.mapping_rules import MappedRow, Resolve, RowSkipped, TableMapping, source_problems
from models.imports.steps import Outcome, Source, SourceRow, Step, StepContext, source_row
from models.imports.targets import delete, write

# A source table with this column is read by it on a delta (``--since``); others are compared by checksum.
UPDATED_COLUMN = "updated_at"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class MappingStep(Step):
    """One source table under its mapping rules. Only the key and the mapped columns are read (and checksummed):
    a change in an ignored column does not make the row changed."""

    def __init__(self, table: TableMapping):
        self.table = table
        self.name = table.source
        self.target = table.target.name
        columns = dict.fromkeys([*table.key, *(rule.column for rule in table.rules)])
        self.read_columns = tuple(columns)
        accounted = set(columns) | table.ignore
        self.updated_column = UPDATED_COLUMN if UPDATED_COLUMN in accounted else None

    def check_columns(self, available: Sequence[str]) -> list[str]:
        return source_problems(self.table, list(available))

    def rows(self, source: Source, since: datetime.datetime | None, after: Any = None) -> Iterator[SourceRow]:
        where, params = [], []
        if since is not None and self.updated_column:
            where.append(f"{_quoted(self.updated_column)} > %s")
            params.append(since)
        keys = [_quoted(name) for name in self.table.key]
        if after is not None:
            where.append(f"({', '.join(keys)}) > ({', '.join(['%s'] * len(keys))})")
            params.extend(after)
        columns = list(self.read_columns)
        for data in source.stream(self.name, columns=columns, where=" AND ".join(where), params=params, order_by=keys):
            position = [data[name] for name in self.table.key]
            yield source_row(self.table.source_key(data), data, position)

    def keys(self, source: Source) -> Iterator[str]:
        for data in source.stream(self.name, columns=list(self.table.key)):
            yield self.table.source_key(data)

    def apply(self, row: SourceRow, ctx: StepContext) -> Outcome:
        try:
            mapped = self.table.map_row(row.data, ctx.resolve)
        except RowSkipped as skipped:
            return Outcome.skipped(skipped.reason, skipped.detail)
        return write(self.target, mapped, ctx.previous_id)

    def apply_batch(self, rows: list[tuple[SourceRow, str | None]], ctx: StepContext) -> list[Outcome] | None:
        """Listings a chunk at a time (``models.imports.listing_batch``); other targets row by row."""
        if self.target != "properties" or ctx.resolve_many is None:
            return None
        resolve = self._resolver([row for row, _ in rows], ctx.resolve, ctx.resolve_many)
        mapped: list[tuple[MappedRow | Outcome, str | None]] = []
        for row, previous_id in rows:
            try:
                mapped.append((self.table.map_row(row.data, resolve), previous_id))
            except RowSkipped as skipped:
                mapped.append((Outcome.skipped(skipped.reason, skipped.detail), previous_id))
        return write_listings(mapped)

    def _resolver(
        self, rows: list[SourceRow], one: Resolve, many: Callable[[str, Iterable[str]], dict[str, str]]
    ) -> Resolve:
        """``one`` (``ctx.resolve``) with the chunk's references (``ref`` rules) read first by ``many``, a query
        per source table; a reference no rule names (a Storage object) is still looked up by ``one``."""
        asked: dict[str, set[str]] = {}
        for rule in self.table.rules:
            if rule.transform != "ref" or not rule.ref:
                continue
            keys = asked.setdefault(rule.ref, set())
            for row in rows:
                value = row.data.get(rule.column)
                if rule.json is not None:
                    try:
                        value = transforms.json_path(rule.json, value)
                    except transforms.BadValue:
                        continue  # map_row reports it
                if value is not None:
                    keys.add(str(value))
        found = {table: many(table, keys) for table, keys in asked.items()}

        def resolve(table: str, key: str) -> str | None:
            if key in asked.get(table, ()):
                return found[table].get(key)
            return one(table, key)

        return resolve

    def delete(self, target_id: str, ctx: StepContext) -> Outcome:
        return delete(self.target, target_id)


def ordered_steps(tables: dict[str, TableMapping]) -> list[Step]:
    """A step per table, each after the tables its references lead to (listings before favorites)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name in visiting:
            return
        visiting.add(name)
        for rule in tables[name].rules:
            if rule.ref in tables:
                visit(rule.ref)
        visiting.discard(name)
        order.append(name)

    for name in tables:
        visit(name)
    return [MappingStep(tables[name]) for name in order]


__all__ = ["MappingStep", "ordered_steps"]
