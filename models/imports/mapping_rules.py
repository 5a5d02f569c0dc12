"""The rules of a mapping file: parsing and validating each source table's rules, and applying them to a row.

``parse_tables(document)`` validates the parsed TOML whole, raising ``MappingError`` with every
problem and its TOML path (``tables."public.listings".columns.price.transform``) — nothing is
written before the mapping is sound. ``source_problems`` then checks a table against the source's
real columns (a dry run): a column neither mapped nor ignored is an error listing the names.
``TableMapping.map_row`` turns one source row into the fields of its target, or raises
``RowSkipped`` with the reason the row is reported under. ``models/imports/mapping.py`` is the
entry point (``parse_mapping(text)``); the format is described in docs/import.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from models.imports import transforms
from models.imports.target_fields import REFERENCE_TARGETS, TARGETS, UPLOAD, UPLOADS, VALUE, Target

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*")
_TABLE_KEYS = frozenset({"target", "key", "ignore", "columns", "constants"})
_RULE_KEYS = frozenset({"field", "transform", "json", "values", "ref", "default"})
# Source tables an import brings across without a mapping; a ``ref`` may point at them.
BUILT_IN_TABLES = ("auth.users", "storage.objects")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class MappingError(ValueError):
    """The mapping cannot be used; ``problems`` lists each one with its TOML path."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


class RowSkipped(Exception):
    """A source row that is reported instead of imported: ``reason`` (a slug) and ``detail``."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


# The import map's lookup: the Hearth id a source row (table, key) became, or None if it did not come across.
Resolve = Callable[[str, str], "str | None"]
# Storage objects are keyed in the import map by their bucket and name, which is how app columns refer to them.
OBJECTS_TABLE = "storage.objects"


def object_key(bucket: str, name: str) -> str:
    """The import-map key of the Storage object ``bucket``/``name``."""
    return source_key([bucket, name])


@dataclass(frozen=True)
class ColumnRule:
    column: str
    field: str
    kind: str
    transform: str | None = None
    json: str | None = None
    values: dict[str, str] | None = None
    ref: str | None = None
    default: Any = None


@dataclass
class MappedRow:
    """A source row as its target's fields; ``notes`` are ``(reason, detail)`` reported beside an imported row."""

    key: str
    fields: dict[str, Any]
    notes: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class TableMapping:
    source: str
    target: Target
    key: tuple[str, ...]
    rules: tuple[ColumnRule, ...]
    ignore: frozenset[str]
    constants: dict[str, Any]

    @property
    def mapped_columns(self) -> frozenset[str]:
        return frozenset(rule.column for rule in self.rules)

    def source_key(self, row: dict) -> str:
        return source_key([row[name] for name in self.key])

    def map_row(self, row: dict, resolve: Resolve) -> MappedRow:
        """The target fields of ``row``; ``RowSkipped`` (``invalid-value``, ``missing-reference``) otherwise."""
        mapped = MappedRow(self.source_key(row), dict(self.constants))
        for rule in self.rules:
            try:
                value = _apply(rule, row.get(rule.column), resolve, mapped)
            except transforms.BadValue as exc:
                raise RowSkipped("invalid-value", f"column {rule.column}: {exc}") from None
            if value is None and rule.default is not None:
                value = rule.default
            mapped.fields[rule.field] = value
        for name in self.target.required:
            if mapped.fields.get(name) is None:
                column = next((rule.column for rule in self.rules if rule.field == name), None)
                where = f"column {column}" if column else f"field {name}"
                raise RowSkipped("missing-value", f"{where}: {name} is required and the row has none")
        return mapped


def source_key(values: list) -> str:
    """How a source row's key is written in the import map: the value, or a JSON list for several columns."""
    if len(values) == 1:
        return str(values[0])
    return json.dumps([str(value) for value in values], ensure_ascii=False)


def _apply(rule: ColumnRule, value, resolve: Resolve, mapped: MappedRow):
    if rule.json is not None:
        value = transforms.json_path(rule.json, value)
    match rule.transform:
        case None | "json":
            return value
        case "money":
            return transforms.money_cents(value)
        case "enum":
            return transforms.enum_value(rule.values or {}, value)
        case "ref":
            if value is None:
                return None
            key = str(value)
            found = resolve(rule.ref or "", key)
            if found is None:
                raise RowSkipped("missing-reference", f"column {rule.column}: {rule.ref} {key} did not come across")
            return found
        case "storage_url":
            return _storage(rule, value, resolve, mapped)
        case kind:
            return transforms.cast(kind, value)


def _storage(rule: ColumnRule, value, resolve: Resolve, mapped: MappedRow):
    if value is None:
        return None
    if rule.kind == UPLOADS:
        # text[] arrives as a list; a JSON array in text is parsed; a single reference is a list of one.
        items = (_json_list(value) if value.lstrip().startswith("[") else [value]) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise transforms.BadValue("is not a list of Storage references")
        found = (_upload_of(rule, item, resolve, mapped) for item in items if item)
        return [upload for upload in found if upload is not None]
    upload = _upload_of(rule, value, resolve, mapped)
    if rule.kind == UPLOAD:
        return upload
    # A text field keeps a link that is not Supabase's, and links to the imported file otherwise.
    return value if upload is None else f"/v1/uploads/{upload}/download"


def _json_list(value: str):
    try:
        return json.loads(value)
    except ValueError:
        raise transforms.BadValue(f"{value[:80]!r} is not a JSON list") from None


def _upload_of(rule: ColumnRule, value, resolve: Resolve, mapped: MappedRow) -> str | None:
    reference = transforms.storage_reference(str(value))
    if reference is None:
        if rule.kind == VALUE:
            return None
        raise transforms.BadValue(f"{str(value)[:80]!r} is not a Supabase Storage reference")
    upload = resolve(OBJECTS_TABLE, object_key(*reference))
    if upload is None:
        # The row comes across without this file; the file's own report says why (missing, infected, ...).
        where = f"{reference[0]}/{reference[1]}"
        mapped.notes.append(("missing-file", f"column {rule.column}: {where} did not come across"))
    return upload


# --- parsing and validation ----------------------------------------------------------------


def parse_tables(document: dict) -> dict[str, TableMapping]:
    """The tables of a parsed mapping file; ``MappingError`` listing every problem with its path."""
    problems: list[Problem] = []
    for name in document:
        if name not in ("version", "tables"):
            problems.append(Problem(name, "unknown setting (expected version, tables)"))
    if document.get("version", 1) != 1:
        problems.append(Problem("version", "only version 1 is understood"))
    tables_doc = document.get("tables")
    if not isinstance(tables_doc, dict) or not tables_doc:
        raise MappingError([*problems, Problem("tables", 'a mapping needs at least one [tables."schema.table"]')])
    targets = {name: spec.get("target") for name, spec in tables_doc.items() if isinstance(spec, dict)}
    tables = {}
    for name, spec in tables_doc.items():
        path = f'tables."{name}"'
        if not _TABLE_NAME.fullmatch(name):
            problems.append(Problem(path, "a source table is named schema.table (public.listings)"))
        elif name in BUILT_IN_TABLES:
            problems.append(Problem(path, f"{name} is imported by Hearth itself and takes no mapping"))
        if not isinstance(spec, dict):
            problems.append(Problem(path, "must be a table"))
            continue
        table = _parse_table(name, spec, path, targets, tables_doc, problems)
        if table is not None:
            tables[name] = table
    if problems:
        raise MappingError(problems)
    return tables


def _parse_table(name, spec, path, targets, tables_doc, problems) -> TableMapping | None:
    for key in spec:
        if key not in _TABLE_KEYS:
            problems.append(Problem(f"{path}.{key}", f"unknown setting (expected {', '.join(sorted(_TABLE_KEYS))})"))
    target = TARGETS.get(spec.get("target"))
    if target is None:
        named = spec.get("target")
        problems.append(Problem(f"{path}.target", f"unknown target {named!r}; one of {', '.join(TARGETS)}"))
        return None
    key = spec.get("key", "id")
    key = [key] if isinstance(key, str) else key
    if not isinstance(key, list) or not key or not all(isinstance(part, str) for part in key):
        problems.append(Problem(f"{path}.key", "a column name or a list of them"))
        key = ["id"]
    ignore = spec.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(column, str) for column in ignore):
        problems.append(Problem(f"{path}.ignore", "a list of column names"))
        ignore = []
    columns = spec.get("columns", {})
    if not isinstance(columns, dict):
        problems.append(Problem(f"{path}.columns", "must be a table of column = rule"))
        columns = {}
    rules: list[ColumnRule] = []
    for column, rule_spec in columns.items():
        specs = rule_spec if isinstance(rule_spec, list) else [rule_spec]
        for index, one in enumerate(specs):
            where = f"{path}.columns.{column}" + (f"[{index}]" if isinstance(rule_spec, list) else "")
            rule = _parse_rule(column, one, where, target, targets, tables_doc, problems)
            if rule is not None:
                rules.append(rule)
        if column in ignore:
            problems.append(Problem(f"{path}.ignore", f"{column} is both mapped and ignored"))
    constants = spec.get("constants", {})
    if not isinstance(constants, dict):
        problems.append(Problem(f"{path}.constants", "must be a table of field = value"))
        constants = {}
    for field_name in constants:
        if target.kind_of(field_name) != VALUE:
            problems.append(Problem(f"{path}.constants.{field_name}", f"{target.name} has no value field {field_name}"))
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.field in seen or rule.field in constants:
            problems.append(Problem(f"{path}.columns.{rule.column}", f"field {rule.field} is already set"))
        seen[rule.field] = rule.column
    for required in target.required:
        if required not in seen and required not in constants:
            problems.append(Problem(path, f"{target.name} needs field {required} (from a column or a constant)"))
    return TableMapping(name, target, tuple(key), tuple(rules), frozenset(ignore), dict(constants))


def _parse_rule(column, spec, path, target: Target, targets, tables_doc, problems) -> ColumnRule | None:
    if isinstance(spec, str):
        spec = {"field": spec}
    if not isinstance(spec, dict):
        problems.append(Problem(path, 'a field name or a table like { field = "...", transform = "..." }'))
        return None
    count = len(problems)
    for key in spec:
        if key not in _RULE_KEYS:
            problems.append(Problem(f"{path}.{key}", f"unknown setting (expected {', '.join(sorted(_RULE_KEYS))})"))
    field_name = spec.get("field")
    kind = target.kind_of(field_name) if isinstance(field_name, str) else None
    if kind is None:
        problems.append(Problem(f"{path}.field", f"{target.name} has no field {field_name!r}"))
    transform = spec.get("transform") or ("ref" if "ref" in spec else "enum" if "values" in spec else None)
    if transform is not None and transform not in transforms.TRANSFORMS:
        problems.append(
            Problem(f"{path}.transform", f"unknown transform {transform!r}; one of {', '.join(transforms.TRANSFORMS)}")
        )
    values = spec.get("values")
    if transform == "enum" and (
        not isinstance(values, dict) or not values or not all(isinstance(v, str) for v in values.values())
    ):
        problems.append(Problem(f"{path}.values", 'an enum needs values = { source = "Hearth value", ... }'))
    json_path = spec.get("json")
    if json_path is not None and (not isinstance(json_path, str) or not json_path):
        problems.append(Problem(f"{path}.json", 'a dotted path into the JSON value ("size.sqft")'))
    ref = spec.get("ref")
    if transform == "ref":
        _check_ref(ref, kind, path, targets, tables_doc, problems)
    elif kind in REFERENCE_TARGETS:
        problems.append(Problem(f"{path}.ref", f'{field_name} is a reference: give ref = "<source table>"'))
    if kind in (UPLOAD, UPLOADS) and transform != "storage_url":
        problems.append(Problem(f"{path}.transform", f'{field_name} holds files: use transform = "storage_url"'))
    if len(problems) > count or kind is None:
        return None
    return ColumnRule(column, field_name, kind, transform, json_path, values, ref, spec.get("default"))


def _check_ref(ref, kind, path, targets, tables_doc, problems) -> None:
    if not isinstance(ref, str):
        problems.append(Problem(f"{path}.ref", "the source table the value refers to (auth.users)"))
        return
    allowed = REFERENCE_TARGETS.get(kind)
    if allowed is None:
        problems.append(Problem(f"{path}.ref", "this field is not a reference"))
        return
    leads_to = ref if ref in BUILT_IN_TABLES else targets.get(ref)
    if ref not in BUILT_IN_TABLES and ref not in tables_doc:
        problems.append(Problem(f"{path}.ref", f"{ref} is neither auth.users nor a table of this mapping"))
    elif leads_to not in allowed:
        problems.append(Problem(f"{path}.ref", f"must refer to a table imported as {' or '.join(allowed)}"))
    elif ref in tables_doc:
        key = tables_doc[ref].get("key", "id")
        if isinstance(key, list) and len(key) != 1:
            problems.append(Problem(f"{path}.ref", f"{ref} has a key of several columns and cannot be referred to"))


def source_problems(table: TableMapping, columns: list[str]) -> list[str]:
    """What is wrong with ``table``'s rules for a source table with ``columns`` (a dry run's check).

    Every column must be mapped, part of the key, or ignored; every column the rules name must exist.
    """
    path = f'tables."{table.source}"'
    if not columns:
        return [f"{path}: the source has no table {table.source}"]
    problems = []
    accounted = table.mapped_columns | table.ignore | set(table.key)
    unmapped = [column for column in columns if column not in accounted]
    if unmapped:
        problems.append(f"{path}: columns neither mapped nor ignored: {', '.join(unmapped)}")
    absent = sorted(accounted - set(columns))
    if absent:
        problems.append(f"{path}: columns named in the mapping that the source lacks: {', '.join(absent)}")
    return problems


__all__ = [
    "BUILT_IN_TABLES",
    "OBJECTS_TABLE",
    "ColumnRule",
    "MappedRow",
    "MappingError",
    "Problem",
    "Resolve",
    "RowSkipped",
    "TableMapping",
    "object_key",
    "parse_tables",
    "source_key",
    "source_problems",
]
