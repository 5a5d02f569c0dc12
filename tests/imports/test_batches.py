"""A chunk is applied as one batch; only a chunk the database refuses is applied again row by row."""

from __future__ import annotations

import datetime
import decimal
import hashlib
import json
import logging
import secrets
import uuid

import pytest

from models.accounts import User
from models.imports.read_ahead import read_ahead
from models.imports.report import ImportReportRow
from models.imports.runs import total
from models.imports.steps import _canonical, checksum
from tasks.imports import ImportRequest, execute
from tests.imports.supabase_db import IMPORTED, SourceUser


def test_a_row_the_database_refuses_fails_alone_and_the_rest_of_its_chunk_comes_across(source, source_users, caplog):
    # Incompressible metadata past the users table's 16 kB limit: the chunk's upsert fails as a whole.
    huge = SourceUser("huge.meta@example.com", "old-pass-huge-1", meta={"blob": secrets.token_urlsafe(40_000)})
    source.add(huge)
    caplog.set_level(logging.INFO, logger="hearth.imports")
    run = execute(ImportRequest(only=["auth.users"]), source_url=source.url)
    users = run.counts["auth.users"]
    assert users["read"] == len(source_users) + 1
    assert users["failed"] == {"error": 1}
    assert total(users, "inserted") == len(IMPORTED)
    assert users["skipped"] == {"anonymous": 1, "deleted": 1, "duplicate-email": 1}
    assert not User.select().where(User.id == huge.id).exists()
    assert User.select().count() == len(IMPORTED)
    [row] = [r for r in ImportReportRow.of_run(run.id) if r["source_key"] == huge.id]
    assert row["outcome"] == "failed" and "blob" not in (row["detail"] or "")
    # PostgreSQL quotes the refused rows in its DETAIL; no log line may carry their password hashes.
    assert "failed as a batch" in caplog.text and "import row failed" in caplog.text
    assert "$2" not in caplog.text and "blob" not in caplog.text


def test_a_user_moving_to_an_email_freed_earlier_in_the_same_chunk_takes_it(source, source_users):
    execute(ImportRequest(only=["auth.users"]), source_url=source.url)
    first, second = source_users["bcrypt_2a"], source_users["bcrypt_2b"]
    # In one chunk: ana leaves her address, bo takes it (users are read oldest first: ana's row comes first).
    source.execute(
        "UPDATE auth.users SET email = 'ana.new@example.com', created_at = created_at - interval '1 day',"
        " updated_at = now() WHERE id = %s",
        (first.id,),
    )
    source.execute("UPDATE auth.users SET email = 'ana@example.com', updated_at = now() WHERE id = %s", (second.id,))
    run = execute(ImportRequest(only=["auth.users"]), source_url=source.url)
    users = run.counts["auth.users"]
    assert users["updated"] == 2 and users["failed"] == {} and users["skipped"] == {}
    assert User.get_by_id(first.id).email == "ana.new@example.com"
    assert User.get_by_id(second.id).email == "ana@example.com"


def test_checksums_are_the_canonical_json_of_the_row():
    row = {
        "id": uuid.uuid4(),
        "price": decimal.Decimal("1250000.50"),
        "at": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
        "on": datetime.date(2024, 5, 1),
        "photo": b"\x00\xff",
        "tags": ("a", "b"),
        "meta": {"name": "陈 静 🏡", "nested": {"z": 1, "a": [1.5, None, True]}},
        "none": None,
    }
    canonical = json.dumps(_canonical(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    assert checksum(row) == hashlib.sha256(canonical.encode()).hexdigest()
    assert checksum({1: "a", "b": 2}) == checksum({"1": "a", "b": 2})  # keys that are not text: canonical form


def test_read_ahead_keeps_order_raises_the_readers_error_and_stops_when_left():
    assert list(read_ahead(iter(range(10)), depth=2)) == list(range(10))

    def failing():
        yield 1
        raise RuntimeError("source gone")

    reader = read_ahead(failing())
    assert next(reader) == 1
    with pytest.raises(RuntimeError, match="source gone"):
        next(reader)

    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    for item in read_ahead(endless()):
        if item == 3:
            break
    assert closed == [True]
