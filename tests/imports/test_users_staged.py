"""``auth.users``, staged: the source's checksum of each row, and the sort by email only where a chunk needs it."""

from __future__ import annotations

import uuid

from models.accounts import User
from models.db import db
from models.imports import staged, users_rules
from models.imports.auth_steps import UsersStep
from models.imports.import_map import ImportMapEntry
from models.imports.report import ImportReportRow
from models.imports.runs import total
from services.supabase_source import SupabaseSource
from tasks.imports import ImportRequest, execute
from tests.imports.supabase_db import IMPORTED

USERS = ["auth.users"]
_ROW = ", ".join(f'u."{name}"' for name in UsersStep.required)
# What docs/import.md says a user's checksum is, written here independently of the import's own SQL.
HASHED = f"to_hex(hash_record_extended(ROW({_ROW}), 0))"
MD5 = f"md5(ROW({_ROW})::text)"


def source_checksums(source, expression: str) -> dict[str, str]:
    with source.conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute(f"SELECT id::text, {expression} FROM auth.users AS u")  # noqa: S608 - the test's own SQL
        return dict(cur.fetchall())


def map_checksums() -> dict[str, str]:
    entries = ImportMapEntry.select().where(ImportMapEntry.source_table == "auth.users")
    return {entry.source_key: entry.checksum for entry in entries}


def users() -> dict:
    return {u.id: (u.email, u.full_name, u.password_hash, u.role, u.phone, u.updated_at) for u in User.select()}


def test_a_users_checksum_is_the_sources_hash_of_its_row_or_before_postgresql_14_its_md5(
    source, source_users, monkeypatch
):
    first = execute(ImportRequest(only=USERS), source_url=source.url).counts["auth.users"]
    assert total(first, "inserted") == len(IMPORTED)
    assert map_checksums() == source_checksums(source, HASHED)
    assert all(len(value) <= 16 for value in map_checksums().values())
    before = users()

    # A source older than PostgreSQL 14 has no ``hash_record_extended``: the md5 of the row's text, as before.
    connect = SupabaseSource.__init__

    def postgresql_13(self, *args, **kwargs):
        connect(self, *args, **kwargs)
        self.server_version = 130016

    monkeypatch.setattr(SupabaseSource, "__init__", postgresql_13)
    switched = execute(ImportRequest(only=USERS), source_url=source.url).counts["auth.users"]
    # Every checksum changed once: the users are updated with what they already hold.
    assert switched["unchanged"] == 0 and total(switched, "updated") == len(IMPORTED)
    assert switched["skipped"] == first["skipped"] and switched["failed"] == {}
    assert map_checksums() == source_checksums(source, MD5)
    assert users() == before
    again = execute(ImportRequest(only=USERS), source_url=source.url).counts["auth.users"]
    assert again["unchanged"] == again["read"] == len(source_users)


def test_only_a_chunk_whose_users_share_an_email_is_sorted_by_email(source, source_users, monkeypatch):
    windowed: list[bool] = []
    database = db.obj
    execute_sql = database.execute_sql

    def spy(sql, *args, **kwargs):
        if sql in (users_rules.APPLY, users_rules.APPLY_UNIQUE_EMAILS):
            windowed.append(sql == users_rules.APPLY)
        return execute_sql(sql, *args, **kwargs)

    monkeypatch.setattr(database, "execute_sql", spy)
    # One chunk holds both twins (Twin@Example.com, twin@example.com): the first one read takes the email.
    first = execute(ImportRequest(only=USERS), source_url=source.url)
    assert windowed == [True]
    assert first.counts["auth.users"]["skipped"]["duplicate-email"] == 1
    assert User.get_by_id(source_users["dup_first"].id).email == "twin@example.com"

    # A delta of two users sharing no email, one of them taking an email a Hearth user holds: no sort, and
    # the Hearth user keeps the email.
    twin, arabic, ana = source_users["dup_second"], source_users["arabic"], source_users["bcrypt_2a"]
    source.execute("UPDATE auth.users SET email = 'twin.2@example.com', updated_at = now() WHERE id = %s", (twin.id,))
    source.execute("UPDATE auth.users SET email = ' ANA@example.com', updated_at = now() WHERE id = %s", (arabic.id,))
    delta = execute(ImportRequest(only=USERS, since="last"), source_url=source.url)
    assert windowed == [True, False]
    counts = delta.counts["auth.users"]
    assert counts["read"] == 2 and counts["inserted"] == 1 and counts["skipped"] == {"duplicate-email": 1}
    assert User.get_by_id(twin.id).email == "twin.2@example.com"
    assert User.get_by_id(ana.id).email == "ana@example.com"
    assert User.get_by_id(arabic.id).email != "ana@example.com"
    [row] = [r for r in ImportReportRow.of_run(delta.id) if r["source_key"] == arabic.id]
    assert row["reason"] == "duplicate-email" and ana.id in row["detail"]


def test_binary_copy_rows_come_whole_without_header_or_trailer_and_their_fields_decode(source):
    select = (
        "SELECT %s::uuid, t.at, t.note FROM (VALUES (1, NULL::timestamptz, 'a\tb'), (2, 'infinity', NULL),"
        " (3, '-infinity', ''), (4, '2024-05-01 12:30:00.123456+02', 'é')) AS t(n, at, note) ORDER BY t.n"
    )
    key = "6f1c1f7e-6b4a-4b8e-9d2b-0c7a3e2f9a10"
    with SupabaseSource.connect(source.url) as snapshot:
        rows = list(snapshot.copy_rows(select, [key]))
        nothing = list(snapshot.copy_rows("SELECT 1 WHERE false", []))
    assert nothing == []
    decoded = [staged.fields(row) for row in rows]
    assert [str(uuid.UUID(bytes=fields[0])) for fields in decoded] == [key] * 4
    assert [staged.timestamp(fields[1]) for fields in decoded] == [
        None,
        "infinity",
        "-infinity",
        "2024-05-01T10:30:00.123456+00:00",
    ]
    assert [fields[2] for fields in decoded] == [b"a\tb", None, b"", "é".encode()]
