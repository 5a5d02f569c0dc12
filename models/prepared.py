"""Statements prepared on the server once per connection (``PREPARE``) and run by name (``EXECUTE``).

For a statement that runs often and whose planning is a large share of its work:
a new transfer's lock-check-write statement (``models/ledger/one_statement.py``)
plans in about as long as it runs. (Preparing the settlement's simpler statements
made no measurable difference, so they are not.)

A connection prepares a statement the first time it runs it; the server keeps
it for the session, whatever its transactions do (a rollback does not undo a
``PREPARE``). A new connection (a reconnect, another pooled connection) is a new
session and prepares again. Behind a pooler in transaction mode a client moves
between server sessions, so ``DATABASE_PREPARED_STATEMENTS=false`` (the
database's ``prepared_statements``) sends the statement whole each time instead.

The SQL names its parameters (``%(name)s``, used as often as needed); the
parameters' types are declared, in order, so the prepared plan does not depend
on how a value happens to be sent.
"""

from __future__ import annotations

import re
import weakref

from models.db import db

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_PARAMETER = re.compile(r"%\((\w+)\)s")


class Prepared:
    """One statement: ``Prepared(name, {parameter: type}, sql).execute({parameter: value})``, the cursor."""

    def __init__(self, name: str, types: dict[str, str], sql: str):
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a statement name: {name!r}")
        used = set(_PARAMETER.findall(sql))
        if used != types.keys():
            raise ValueError(f"{name}: the SQL's parameters {sorted(used)} are not the typed ones {sorted(types)}")
        position = {parameter: index for index, parameter in enumerate(types, start=1)}
        self.name = name
        self.sql = sql
        self.parameters = tuple(types)
        numbered = _PARAMETER.sub(lambda found: f"${position[found.group(1)]}", sql)
        self._prepare = f"PREPARE {name} ({', '.join(types.values())}) AS {numbered}"
        self._execute = f"EXECUTE {name} ({', '.join(f'%({parameter})s' for parameter in types)})"
        # The connections (psycopg2's objects) whose session holds the statement.
        self._sessions: weakref.WeakSet = weakref.WeakSet()

    def execute(self, params: dict):
        """Run the statement with ``params`` (a value for each declared parameter); the cursor."""
        if params.keys() != set(self.parameters):
            raise ValueError(f"{self.name} takes the parameters {sorted(self.parameters)}, not {sorted(params)}")
        if not getattr(db.obj, "prepared_statements", True):
            return db.execute_sql(self.sql, params)
        connection = db.connection()
        if connection not in self._sessions:
            db.execute_sql(self._prepare)
            self._sessions.add(connection)
        return db.execute_sql(self._execute, params)


__all__ = ["Prepared"]
