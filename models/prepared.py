"""Statements prepared on the server once per connection (``PREPARE``) and run by name (``EXECUTE``).

For a statement that runs often and whose planning is a large share of its work:
a new transfer's lock-check-write statement (``models/ledger/one_statement.py``)
plans in about as long as it runs. (Preparing the settlement's simpler statements
made no measurable difference, so they are not.) A connection prepares a statement the first
time it runs it; the server keeps the statement for the session, whatever its
transactions do (a rollback does not undo a ``PREPARE``). A new connection (a
reconnect, another pooled connection) is a new session and prepares again.

The SQL is written with ``$1``, ``$2``, ... (PostgreSQL's own placeholders) and
the parameter types are declared, so the plan does not depend on how a value
happens to be sent.
"""

from __future__ import annotations

import re
import weakref

from models.db import db

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")


class Prepared:
    """One statement: ``Prepared(name, types, sql).execute(params)`` returns the cursor."""

    def __init__(self, name: str, types: tuple[str, ...], sql: str):
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a statement name: {name!r}")
        self.name = name
        self.types = types
        self._prepare = f"PREPARE {name} ({', '.join(types)}) AS {sql}"
        self._execute = f"EXECUTE {name} ({', '.join(['%s'] * len(types))})"
        # The connections (psycopg2's objects) whose session holds the statement.
        self._sessions: weakref.WeakSet = weakref.WeakSet()

    def execute(self, params: list | tuple):
        if len(params) != len(self.types):
            raise ValueError(f"{self.name} takes {len(self.types)} parameters, not {len(params)}")
        connection = db.connection()
        if connection not in self._sessions:
            db.execute_sql(self._prepare)
            self._sessions.add(connection)
        return db.execute_sql(self._execute, params)


__all__ = ["Prepared"]
