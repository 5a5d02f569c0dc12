"""Statements prepared once per connection (``models/prepared.py``), against the real PostgreSQL."""

from __future__ import annotations

import gc
import threading

import pytest

from models.db import db
from models.prepared import Prepared

pytestmark = pytest.mark.usefixtures("database")

SQL = "SELECT %(a)s::bigint + %(b)s::bigint + %(a)s::bigint, pg_backend_pid()"
TYPES = {"a": "bigint", "b": "bigint"}


def _prepared_here(name: str) -> int:
    return db.execute_sql("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", (name,)).fetchone()[0]


def test_a_statement_is_prepared_once_per_connection_and_answers_each_call():
    adding = Prepared("test_adding", TYPES, SQL)
    with db.connection_context():
        assert _prepared_here("test_adding") == 0
        assert adding.execute({"a": 2, "b": 3}).fetchone()[0] == 7
        assert adding.execute({"a": 40, "b": 2}).fetchone()[0] == 82
        assert _prepared_here("test_adding") == 1
        # A rolled-back transaction does not take the statement with it.
        with db.atomic() as transaction:
            assert adding.execute({"a": 1, "b": 1}).fetchone()[0] == 3
            transaction.rollback()
        assert adding.execute({"a": 1, "b": 2}).fetchone()[0] == 4
        here = adding.execute({"a": 0, "b": 0}).fetchone()[1]

    # Another connection (another thread's) is another session: it prepares the statement for itself.
    seen = {}

    def elsewhere():
        with db.connection_context():
            seen["sum"], seen["pid"] = adding.execute({"a": 7, "b": 8}).fetchone()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen["sum"] == 22 and seen["pid"] != here


def test_a_closed_connection_is_forgotten_and_the_next_one_prepares_again():
    adding = Prepared("test_adding_again", TYPES, SQL)
    seen = {}

    def in_a_thread():
        db.connect(reuse_if_open=True)
        seen["first"] = adding.execute({"a": 1, "b": 1}).fetchone()[1]
        db.manual_close()  # the session ends, and its statement with it
        db.connect(reuse_if_open=True)
        seen["again"], seen["second"] = adding.execute({"a": 2, "b": 2}).fetchone()
        db.close()

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen["again"] == 6 and seen["second"] != seen["first"]
    gc.collect()
    assert len(adding._sessions) <= 1


def test_without_prepared_statements_the_statement_goes_whole_and_nothing_stays_in_the_session(monkeypatch):
    """Behind a pooler in transaction mode (DATABASE_PREPARED_STATEMENTS=false) no session keeps a statement."""
    monkeypatch.setattr(db.obj, "prepared_statements", False)
    adding = Prepared("test_adding_whole", TYPES, SQL)
    with db.connection_context():
        assert adding.execute({"a": 5, "b": 1}).fetchone()[0] == 11
        assert adding.execute({"a": 1, "b": 1}).fetchone()[0] == 3
        assert _prepared_here("test_adding_whole") == 0
    assert len(adding._sessions) == 0


def test_names_and_parameters_are_checked():
    with pytest.raises(ValueError, match="not a statement name"):
        Prepared("x; DROP TABLE users", TYPES, SQL)
    with pytest.raises(ValueError, match="not the typed ones"):
        Prepared("test_untyped", {"a": "bigint"}, SQL)
    adding = Prepared("test_counted", TYPES, SQL)
    with pytest.raises(ValueError, match="takes the parameters"), db.connection_context():
        adding.execute({"a": 1})
