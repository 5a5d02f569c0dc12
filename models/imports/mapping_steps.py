"""The step of each app table a mapping file names: read its rows, map them, write them to their target."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from typing import Any

from models.imports.mapping_rules import RowSkipped, TableMapping, source_problems
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
