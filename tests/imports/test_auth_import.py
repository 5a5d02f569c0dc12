"""The import of ``auth.users`` and ``auth.identities`` from a Supabase-shaped source, in process."""

from __future__ import annotations

import logging

import pytest

from models.accounts import User
from models.identities import UserIdentity
from models.imports.import_map import ImportMapEntry
from models.imports.report import ImportReportRow
from models.imports.runs import ImportRun, total
from models.passwords import verify_password
from tasks.imports import BadInput, ImportRequest, RunStopped, execute
from tests.imports.supabase_db import DAY, IMPORTED, NOT_IMPORTED, NOW, SourceUser

AUTH = ["auth.users", "auth.identities"]


def run_import(source, **options) -> ImportRun:
    return execute(ImportRequest(only=options.pop("only", AUTH), **options), source_url=source.url)


def report(run) -> dict[tuple[str, str], tuple[str, str]]:
    return {(r["source_table"], r["source_key"]): (r["reason"], r["detail"]) for r in ImportReportRow.of_run(run.id)}


def test_every_user_is_imported_or_reported_and_the_rules_hold(source, source_users):
    run = run_import(source)
    users = run.counts["auth.users"]
    came = total(users, "inserted") + total(users, "updated") + total(users, "unchanged")
    assert users["read"] == len(source_users) == came + total(users, "skipped") + total(users, "failed")
    assert total(users, "inserted") == len(IMPORTED)
    assert users["skipped"] == {"anonymous": 1, "deleted": 1, "duplicate-email": 1}
    reported = report(run)
    for name, reason in NOT_IMPORTED.items():
        assert reported[("auth.users", source_users[name].id)][0] == reason
        assert not User.select().where(User.id == source_users[name].id).exists()
    dup = reported[("auth.users", source_users["dup_second"].id)][1]
    assert source_users["dup_first"].id in dup and source_users["dup_second"].id in dup
    for name in ("oauth", "sso"):
        assert reported[("auth.users", source_users[name].id)][0] == "no-password"

    by_name = {name: User.get_by_id(source_users[name].id) for name in IMPORTED}
    for name in ("bcrypt_2a", "bcrypt_2b", "bcrypt_2y"):
        user = by_name[name]
        assert user.password_hash.startswith(source_users[name].prefix)
        assert verify_password(user.password_hash, source_users[name].password)
    assert by_name["bcrypt_2a"].full_name == "Ana Lúcia"
    assert by_name["bcrypt_2b"].full_name == "Бо Петров"
    assert by_name["bcrypt_2y"].full_name == "陈 静 🏡"
    assert by_name["arabic"].full_name == "داليا حسن"
    assert by_name["no_name"].full_name == "emoji.person"
    assert by_name["no_name"].user_metadata == {"avatar": "🙂"}
    assert by_name["dup_first"].email == "twin@example.com"
    assert by_name["unconfirmed"].email_verified_at is None
    assert by_name["bcrypt_2a"].email_verified_at is not None
    assert by_name["phone"].phone == "+15551234567" and by_name["phone"].phone_verified_at is not None
    assert by_name["phone"].role == "seller"
    assert by_name["admin_claim"].role == "buyer"  # an admin is never made by an imported field
    assert by_name["oauth"].password_hash is None and by_name["sso"].password_hash is None
    assert by_name["banned_future"].is_banned and by_name["banned_future"].banned_until > NOW
    assert not by_name["banned_past"].is_banned and by_name["banned_past"].banned_at is None

    identities = run.counts["auth.identities"]
    assert total(identities, "inserted") == 3 and identities["read"] == 3
    google = UserIdentity.get(UserIdentity.provider == "google")
    assert str(google.user_id) == source_users["oauth"].id and google.email == "gina@example.com"


def test_a_second_run_changes_nothing_and_says_so(source, source_users):
    run_import(source)
    before = {u.id: (u.updated_at, u.password_hash) for u in User.select()}
    again = run_import(source)
    users = again.counts["auth.users"]
    assert users["read"] == len(source_users) == users["unchanged"]
    assert again.counts["auth.identities"]["unchanged"] == 3
    assert again.reported == 0
    assert {u.id: (u.updated_at, u.password_hash) for u in User.select()} == before


def test_a_hearth_user_with_a_source_users_id_before_the_first_import_is_updated_not_duplicated(
    source, source_users, caplog
):
    # A first import does not look users up by id (no import map yet): the users' key catches this one,
    # and the chunk is applied again with the lookups, where the user is found and updated.
    ana = source_users["bcrypt_2a"]
    User.create(id=ana.id, email="ana.in.hearth@example.com", full_name="Ana in Hearth", role="agent")
    caplog.set_level(logging.INFO, logger="hearth.imports")
    run = run_import(source, only=["auth.users"])
    assert "failed as a batch" not in caplog.text  # one more try of the batch, not the chunk row by row
    users = run.counts["auth.users"]
    assert users["failed"] == {} and total(users, "updated") == 1
    assert total(users, "inserted") == len(IMPORTED) - 1
    assert User.select().count() == len(IMPORTED)
    user = User.get_by_id(ana.id)
    assert (user.email, user.full_name, user.role) == ("ana@example.com", "Ana Lúcia", "buyer")
    assert verify_password(user.password_hash, ana.password)
    entry = ImportMapEntry.get((ImportMapEntry.source_table == "auth.users") & (ImportMapEntry.source_key == ana.id))
    assert entry.target_id == ana.id and entry.skipped_reason is None


def test_a_run_stopped_after_a_chunk_resumes_without_duplicates(source, source_users, monkeypatch):
    import models.imports.runner as runner

    monkeypatch.setattr(runner, "CHUNK_SIZE", 4)
    monkeypatch.setattr(runner, "STAGED_CHUNK_SIZE", 4)  # auth.users is a staged step
    calls = []

    def die_after_first_chunk(progress):
        calls.append(progress)
        raise RuntimeError("killed")

    with pytest.raises(RunStopped):
        execute(ImportRequest(only=AUTH), source_url=source.url, on_progress=die_after_first_chunk)
    [stopped] = ImportRun.select().where(ImportRun.status == "failed")
    assert stopped.error == "RuntimeError: killed"
    assert stopped.counts["auth.users"]["read"] == 4
    assert User.select().count() == total(stopped.counts["auth.users"], "inserted") > 0
    resumed = run_import(source)
    assert resumed.id == stopped.id and resumed.status == "succeeded"
    users = resumed.counts["auth.users"]
    assert users["read"] == len(source_users)
    assert total(users, "inserted") == len(IMPORTED)
    assert User.select().count() == len(IMPORTED)
    assert ImportMapEntry.select().where(ImportMapEntry.source_table == "auth.users").count() == len(source_users)


def test_a_delta_picks_up_an_edited_and_a_new_user(source, source_users):
    run_import(source)
    source.execute(
        "UPDATE auth.users SET raw_user_meta_data = %s, updated_at = now() WHERE id = %s",
        ('{"full_name": "Ana Lúcia Souza"}', source_users["bcrypt_2a"].id),
    )
    newcomer = SourceUser("new.person@example.com", "old-pass-new-1", created_at=NOW)
    source.add(newcomer)
    delta = run_import(source, since="last")
    users = delta.counts["auth.users"]
    assert users["inserted"] == 1 and users["updated"] == 1
    assert users["read"] == 2  # only what changed since the previous snapshot (and its overlap) is read
    assert User.get_by_id(source_users["bcrypt_2a"].id).full_name == "Ana Lúcia Souza"
    assert User.get_by_id(newcomer.id).email == "new.person@example.com"


def test_a_row_deleted_at_the_source_is_reported_and_applied_only_when_asked(source, source_users):
    run_import(source)
    gone = source_users["bcrypt_2b"].id
    source.execute("DELETE FROM auth.users WHERE id = %s", (gone,))
    first = run_import(source, since="last")
    assert report(first)[("auth.users", gone)][0] == "deleted-at-source"
    assert first.counts["auth.users"]["deleted_at_source"] == 1
    assert User.select().where(User.id == gone).exists()
    applied = run_import(source, since="last", apply_deletes=True)
    assert report(applied)[("auth.users", gone)][0] == "deleted-at-source"
    assert not User.select().where(User.id == gone).exists()
    assert run_import(source, since="last").reported == 0


def test_a_dry_run_reads_everything_and_writes_nothing(source, source_users):
    rows = []
    run = execute(ImportRequest(only=AUTH, dry_run=True), source_url=source.url, report_sink=rows.append)
    assert run.counts["auth.users"]["read"] == len(source_users)
    assert {r["reason"] for r in rows} >= {"anonymous", "deleted", "duplicate-email", "no-password"}
    assert User.select().count() == 0
    assert ImportRun.select().count() == 0 and ImportMapEntry.select().count() == 0


def test_bad_input_is_refused_before_anything_is_written(source):
    with pytest.raises(BadInput, match=r"\*\*\*@") as caught:
        execute(ImportRequest(only=AUTH), source_url="postgresql://someone:hunter2-secret@127.0.0.1:1/nowhere")
    assert "hunter2-secret" not in str(caught.value)
    with pytest.raises(BadInput, match="--mapping is required"):
        execute(ImportRequest(), source_url=source.url)
    with pytest.raises(BadInput, match=r"no step for public\.listings"):
        execute(ImportRequest(only=["public.listings"]), source_url=source.url)
    source.execute("ALTER TABLE auth.users RENAME COLUMN banned_until TO banned_till")
    try:
        with pytest.raises(BadInput, match="missing column banned_until"):
            execute(ImportRequest(only=AUTH), source_url=source.url)
    finally:
        source.execute("ALTER TABLE auth.users RENAME COLUMN banned_till TO banned_until")
    assert ImportRun.select().count() == 0 and User.select().count() == 0


def test_expired_bans_are_lifted_by_the_maintenance_task(source, source_users):
    from tasks.maintenance import lift_expired_bans

    run_import(source)
    User.update(banned_until=NOW - DAY).where(User.id == source_users["banned_future"].id).execute()
    assert lift_expired_bans()["lifted"] == 1
    assert User.get_by_id(source_users["banned_future"].id).banned_at is None


def test_password_links_go_once_to_users_without_a_password(source, source_users):
    from models.jobs import Job

    run = run_import(source, send_password_links=True)
    assert run.counts["password_links"]["queued"] == 2
    sent = Job.select().where(Job.kind == "accounts.send_password_reset")
    assert sorted(job.input["email"] for job in sent) == ["gina@example.com", "sam@corp.example"]
    again = run_import(source, send_password_links=True)
    assert again.counts["password_links"]["queued"] == 0
    assert sent.count() == 2
