"""A chunk's new listings written together: the rows and outcomes ``write_listing`` gives one at a time.

A first import is almost only new listings, and writing each one through the model (an INSERT for
the listing, one for its history, two for its search mark) cost most of its time. Here a chunk's
new listings without photos are checked under the same rules (``listing_values``, ``new_listing``;
the chunk's agents read in one query) and written in four statements: the ``properties`` rows and
their first history rows, each as one multi-row INSERT, and their search marks and reindex jobs
(``mark_dirty_many``). A listing imported before (its update goes through ``Property.apply_changes``,
which keeps its history and version) or one with photos goes through ``targets.write`` as before,
in its own savepoint.

A statement the database refuses (a CHECK, a key already taken) raises: the runner rolls the
chunk's savepoint back and applies its rows again one at a time, where that row alone is reported.
"""

from __future__ import annotations

from typing import Any

from psycopg2.extras import execute_values

from models.base import utcnow
from models.db import db
from models.imports.listing_target import listing_values, new_listing
from models.imports.mapping_rules import MappedRow
from models.imports.steps import Outcome
from models.imports.targets import with_notes, write
from models.listing_rules import ListingError, agent_errors_many
from models.properties import Property, PropertyHistory
from models.search.queue import mark_dirty_many

TARGET = "properties"
_FIELDS = Property._meta.sorted_fields
_HISTORY_FIELDS = [PropertyHistory._meta.fields[name] for name in ("property", "at", "field", "old_value", "new_value")]
_COLUMNS = ", ".join(field.column_name for field in _FIELDS)
_HISTORY_COLUMNS = ", ".join(field.column_name for field in _HISTORY_FIELDS)
_INSERT = f"INSERT INTO properties ({_COLUMNS}) VALUES %s"  # noqa: S608 - the model's own columns
_INSERT_HISTORY = f"INSERT INTO property_history ({_HISTORY_COLUMNS}) VALUES %s"  # noqa: S608 - the same


def write_listings(rows: list[tuple[MappedRow | Outcome, str | None]]) -> list[Outcome]:
    """The outcome of each row (a mapped row with its ``previous_id``, or the outcome of a row already refused).

    The outcomes, and what is written, are those of ``targets.write`` applied to each row in order.
    """
    outcomes: list[Outcome | None] = []
    fresh: list[tuple[int, MappedRow, dict]] = []
    for mapped, previous_id in rows:
        if isinstance(mapped, Outcome):
            outcomes.append(mapped)
        elif previous_id or mapped.fields.get("photos") is not None:
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
        execute_values(cursor, _INSERT, [_row(listing) for listing in listings], page_size=len(listings))
        history_rows = [tuple(field.db_value(row[field.name]) for field in _HISTORY_FIELDS) for row in history]
        execute_values(cursor, _INSERT_HISTORY, history_rows, page_size=len(history_rows))
        mark_dirty_many(listing["id"] for listing in listings)
    return [outcome for outcome in outcomes if outcome is not None]


def _row(listing: dict[str, Any]) -> tuple:
    """A listing's column values in ``_FIELDS`` order, defaults as ``Property.create`` fills them in."""
    values = []
    for field in _FIELDS:
        if field.name in listing:
            value = listing[field.name]
        else:
            value = field.default() if callable(field.default) else field.default
        values.append(field.db_value(value))
    return tuple(values)


__all__ = ["write_listings"]
