"""A chunk's new listings written together: the rows and outcomes ``write_listing`` gives one at a time.

A first import is almost only new listings, and writing each one through the model (an INSERT for
the listing, one for its history, two for its search mark) cost most of its time. Here a chunk's
new listings without photos (none, or none that came across) are checked under the same rules
(``listing_values``, ``new_listing``; the chunk's agents read in one query) and written in four
statements: the ``properties`` rows and their first history rows, each with one ``COPY``, their
search marks, and one reindex job for all of them (``mark_new_many``). A listing imported before (its update goes
through ``Property.apply_changes``, which keeps its history and version) or one with photos to
attach goes through ``targets.write`` as before, in its own savepoint.

A statement the database refuses (a CHECK, a key already taken) raises, and so does a value COPY
would not read as an INSERT does (a list of numbers for a text array): the runner rolls the chunk's
savepoint back and applies its rows again one at a time, where a refused row alone is reported.
"""

from __future__ import annotations

import datetime
import io
import math
import uuid
from collections.abc import Callable
from typing import Any

from peewee import CharField, DateField, Field, FloatField, ForeignKeyField, IntegerField, TextField, UUIDField
from playhouse.postgres_ext import ArrayField, DateTimeTZField

from models.base import utcnow
from models.db import db
from models.imports.listing_target import listing_values, new_listing
from models.imports.mapping_rules import MappedRow
from models.imports.steps import Outcome
from models.imports.targets import with_notes, write
from models.listing_rules import ListingError, agent_errors_many
from models.properties import Property, PropertyHistory
from models.search.queue import mark_new_many

TARGET = "properties"
_FIELDS = Property._meta.sorted_fields
_HISTORY_FIELDS = [PropertyHistory._meta.fields[name] for name in ("property", "at", "field", "old_value", "new_value")]
_COLUMNS = ", ".join(field.column_name for field in _FIELDS)
_HISTORY_COLUMNS = ", ".join(field.column_name for field in _HISTORY_FIELDS)
_COPY = f"COPY properties ({_COLUMNS}) FROM STDIN"
_COPY_HISTORY = f"COPY property_history ({_HISTORY_COLUMNS}) FROM STDIN"


def _kept_as_is(field: Field) -> tuple[type, ...]:
    """The types of value ``field.db_value`` returns unchanged (or, for a UUID, as text PostgreSQL reads alike)."""
    if isinstance(field, ForeignKeyField):
        field = field.rel_field
    if isinstance(field, UUIDField):
        return (str, uuid.UUID)
    kinds = {IntegerField: int, FloatField: float, TextField: str, CharField: str, ArrayField: list}
    kinds.update({DateTimeTZField: datetime.datetime, DateField: datetime.date})
    return tuple(kind for cls, kind in kinds.items() if isinstance(field, cls))


# Each column's field name, conversion, the types it keeps as they are, and its default (``Property.create``
# fills in a field's default when not given).
_SPEC = [(field.name, field.db_value, _kept_as_is(field), field.default) for field in _FIELDS]
_MISSING = object()
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def write_listings(rows: list[tuple[MappedRow | Outcome, str | None]]) -> list[Outcome]:
    """The outcome of each row (a mapped row with its ``previous_id``, or the outcome of a row already refused).

    The outcomes, and what is written, are those of ``targets.write`` applied to each row in order.
    """
    outcomes: list[Outcome | None] = []
    fresh: list[tuple[int, MappedRow, dict]] = []
    for mapped, previous_id in rows:
        if isinstance(mapped, Outcome):
            outcomes.append(mapped)
        elif previous_id or mapped.fields.get("photos"):  # a new listing without photos has none to attach
            outcomes.append(write(TARGET, mapped, previous_id))
        else:
            values, problems = listing_values(mapped.fields)
            if problems:
                outcomes.append(Outcome.skipped("listing-rule", "; ".join(problems)))
            else:
                fresh.append((len(outcomes), mapped, values))
                outcomes.append(None)
    agents = agent_errors_many(values["list_agent_id"] for _, _, values in fresh if values["list_agent_id"] is not None)
    now = utcnow()
    listings, history = [], []
    for index, mapped, values in fresh:
        try:
            listing, first = new_listing(values, mapped.key, now, lambda agent_id: list(agents[str(agent_id)]))
        except ListingError as exc:
            outcomes[index] = Outcome.skipped("listing-rule", str(exc))
            continue
        listings.append(listing)
        history.extend(first)
        outcomes[index] = with_notes(mapped, Outcome.inserted(listing["id"]))
    if listings:
        cursor = db.cursor()
        cursor.copy_expert(_COPY, io.StringIO("".join(_line(listing) for listing in listings)))
        cursor.copy_expert(_COPY_HISTORY, io.StringIO("".join(_history_line(row) for row in history)))
        mark_new_many(listing["id"] for listing in listings)
    return [outcome for outcome in outcomes if outcome is not None]


def _line(row: dict[str, Any]) -> str:
    """A listing's row in COPY's text format, defaults as ``Model.create`` fills them in."""
    texts = _DEFAULT_TEXTS.copy()
    for index, name in _CALLED_DEFAULTS:
        if name not in row:
            texts[index] = _value_text(index, _SPEC[index][3]())
    for name, value in row.items():
        index = _POSITION.get(name)
        if index is not None:
            texts[index] = _value_text(index, value)
    return "\t".join(texts) + "\n"


def _value_text(index: int, value: Any) -> str:
    """``value`` of column ``index`` as COPY text, read by PostgreSQL as the literal an INSERT would send.
    ``ValueError`` for a value whose literal is typed otherwise (a list of numbers, a boolean, ...): the chunk
    then goes row by row."""
    if value is None:
        return _NULL
    _name, db_value, as_is, _default = _SPEC[index]
    kind = type(value)
    if kind not in as_is:
        value = db_value(value)
        kind = type(value)
    write = _WRITE.get(kind)
    if write is None:
        raise ValueError(f"a {kind.__name__} is not written by COPY here")
    return write(value)


def _history_line(row: dict[str, Any]) -> str:
    """A first history row (``new_listing``'s: the listing's id, a time, the field, no old value, text) as COPY text."""
    values = (str(row["property"]), row["at"].isoformat(), row["field"].translate(_ESCAPES))
    old, new = row["old_value"], row["new_value"]
    return "\t".join((*values, _NULL if old is None else old.translate(_ESCAPES), new.translate(_ESCAPES))) + "\n"


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value} is not written by COPY here")
    return repr(value)


def _array(items: list) -> str:
    if not all(item is None or type(item) is str for item in items):
        raise ValueError("only a list of text is written by COPY here")
    quoted = ("NULL" if item is None else '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return ("{" + ",".join(quoted) + "}").translate(_ESCAPES)


_NULL = "\\N"
# By exact type: a subclass (a bool is an int) is refused, as is any type not listed.
_WRITE: dict[type, Callable[[Any], str]] = {
    type(None): lambda value: _NULL,
    str: lambda value: value.translate(_ESCAPES),
    int: str,
    float: _float,
    uuid.UUID: str,
    datetime.datetime: datetime.datetime.isoformat,
    datetime.date: datetime.date.isoformat,
    list: _array,
}


# A column a row leaves out: its default's text, written once here (a callable default: per row, in ``_line``).
_POSITION = {name: index for index, (name, *_rest) in enumerate(_SPEC)}
_CALLED_DEFAULTS = [(index, name) for index, (name, _, _, default) in enumerate(_SPEC) if callable(default)]
_DEFAULT_TEXTS = [_NULL if callable(spec[3]) else _value_text(index, spec[3]) for index, spec in enumerate(_SPEC)]

__all__ = ["write_listings"]
