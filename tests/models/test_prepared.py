"""Statements prepared once per connection (``models/prepared.py``), against the real PostgreSQL."""

from __future__ import annotations

import gc
import threading

import pytest

from models.db import db
from models.prepared import Prepared

pytestmark = pytest.mark.usefixtures("database")

SQL = "SELECT $1 + $2, pg_backend_pid()"


def _prepared_here(name: str) -> int:
    return db.execute_sql("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", (name,)).fetchone()[0]


def test_a_statement_is_prepared_once_per_connection_and_answers_each_call():
    adding = Prepared("test_adding", ("bigint", "bigint"), SQL)
    with db.connection_context():
        assert _prepared_here("test_adding") == 0
        assert adding.execute((2, 3)).fetchone()[0] == 5
        assert adding.execute((40, 2)).fetchone()[0] == 42
        assert _prepared_here("test_adding") == 1
        # A rolled-back transaction does not take the statement with it.
        with db.atomic() as transaction:
            assert adding.execute((1, 1)).fetchone()[0] == 2
            transaction.rollback()
        assert adding.execute((1, 2)).fetchone()[0] == 3
        here = adding.execute((0, 0)).fetchone()[1]

    # Another connection (another thread's) is another session: it prepares the statement for itself.
    seen = {}

    def elsewhere():
        with db.connection_context():
            seen["sum"], seen["pid"] = adding.execute((7, 8)).fetchone()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen["sum"] == 15 and seen["pid"] != here


def test_a_closed_connection_is_forgotten_and_the_next_one_prepares_again():
    adding = Prepared("test_adding_again", ("bigint", "bigint"), SQL)
    seen = {}

    def in_a_thread():
        db.connect(reuse_if_open=True)
        seen["first"] = adding.execute((1, 1)).fetchone()[1]
        db.manual_close()  # the session ends, and its statement with it
        db.connect(reuse_if_open=True)
        seen["again"], seen["second"] = adding.execute((2, 2)).fetchone()
        db.close()

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen["again"] == 4 and seen["second"] != seen["first"]
    gc.collect()
    assert len(adding._sessions) <= 1


def test_names_and_parameter_counts_are_checked():
    with pytest.raises(ValueError, match="not a statement name"):
        Prepared("x; DROP TABLE users", ("int",), "SELECT $1")
    adding = Prepared("test_counted", ("bigint", "bigint"), SQL)
    with pytest.raises(ValueError, match="takes 2 parameters"), db.connection_context():
        adding.execute((1,))
