"""``auth.identities`` applied a chunk at a time: one read of what the chunk's rows meet, one upsert.

``apply_identities`` gives the outcomes ``IdentitiesStep.apply`` (``models.imports.auth_steps``)
would give row after row, with the same rules (it calls the step's own checks and field builders),
in two statements per chunk instead of three to five per row: a read of the identities holding the
chunk's provider ids or ids, then one ``INSERT ... ON CONFLICT (id) DO UPDATE`` from arrays.
(``auth.users`` is a staged step: its rules are SQL, ``models.imports.users_rules``.) Rows earlier in
the chunk count as holders for the later ones, as they would one by one. A constraint the read did not
foresee (a row written meanwhile by someone else) fails the statement: the runner then applies the chunk row by row.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from models.db import db
from models.imports.steps import Outcome, SourceRow

# Each target column and its type: a chunk's values travel as one text array per column.
_IDENTITY_COLUMNS = (
    ("id", "uuid"),
    ("user_id", "uuid"),
    ("provider", "text"),
    ("provider_id", "text"),
    ("identity_data", "jsonb"),
    ("email", "text"),
    ("last_sign_in_at", "timestamptz"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)


def _text(value: Any) -> str | None:
    """A value as PostgreSQL reads it back from text (ISO times with their offset, JSON for JSON)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _upsert(table: str, columns: tuple[tuple[str, str], ...], rows: list[dict[str, Any]]) -> None:
    """``INSERT ... SELECT FROM unnest(...) ON CONFLICT (id) DO UPDATE``: one statement, one array per column.

    Text arrays cost the driver a fraction of what a VALUES list of typed parameters does (times,
    UUIDs and JSON are each adapted by Python code there), and PostgreSQL casts them in C.
    """
    if not rows:
        return
    names = [name for name, _ in columns]
    arrays = [[_text(row[name]) for row in rows] for name in names]
    unnest = ", ".join(f"%s::{kind}[]" for _, kind in columns)
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in names if name != "id")
    db.execute_sql(
        f"INSERT INTO {table} ({', '.join(names)}) SELECT * FROM unnest({unnest})"  # noqa: S608 - our own names
        f" ON CONFLICT (id) DO UPDATE SET {updates}",
        arrays,
    )


def apply_identities(step, rows: list[SourceRow], users: dict[str, str]) -> list[Outcome]:
    """``auth.identities`` rows → user_identities, as ``IdentitiesStep.apply`` would one by one.

    ``users``: the Hearth id of each imported source user among the rows' ``user_id``s.
    """
    outcomes: list[Outcome | None] = [None] * len(rows)
    admitted: list[tuple[int, str, dict]] = []
    for index, row in enumerate(rows):
        user_id = users.get(str(row.data["user_id"]))
        if user_id is None:
            outcomes[index] = step.missing_user(row.data)
        else:
            admitted.append((index, str(row.data["id"]), step.fields(row.data, user_id)))
    if admitted:
        cursor = db.execute_sql(
            # Two arms, so that each is found through its own index (an OR of the two scans the table).
            "SELECT i.id::text, i.provider, i.provider_id"
            " FROM unnest(%s::text[], %s::text[]) AS k(provider, provider_id)"
            " JOIN user_identities AS i ON i.provider = k.provider AND i.provider_id = k.provider_id"
            " UNION SELECT id::text, provider, provider_id FROM user_identities WHERE id = ANY(%s::uuid[])",
            (
                [fields["provider"] for _, _, fields in admitted],
                [fields["provider_id"] for _, _, fields in admitted],
                [identity_id for _, identity_id, _ in admitted],
            ),
        )
        found = cursor.fetchall()
        holder_of = {(provider, provider_id): identity_id for identity_id, provider, provider_id in found}
        key_of = {identity_id: (provider, provider_id) for identity_id, provider, provider_id in found}
        values = []
        for index, identity_id, fields in admitted:
            key = (fields["provider"], fields["provider_id"])
            holder = holder_of.get(key)
            if holder is not None and holder != identity_id:
                outcomes[index] = step.duplicate(fields, holder)
                continue
            exists = identity_id in key_of
            outcomes[index] = Outcome.updated(identity_id) if exists else Outcome.inserted(identity_id)
            previous = key_of.get(identity_id)
            if previous is not None and previous != key and holder_of.get(previous) == identity_id:
                del holder_of[previous]
            holder_of[key], key_of[identity_id] = identity_id, key
            values.append({**fields, "id": identity_id, "user_id": fields["user"]})
        _upsert("user_identities", _IDENTITY_COLUMNS, values)
    return [outcome for outcome in outcomes if outcome is not None]


__all__ = ["apply_identities"]
