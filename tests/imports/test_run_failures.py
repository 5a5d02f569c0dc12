"""A run that stops on an error is marked failed and resumed by the next; a user soft-deleted after import."""

from __future__ import annotations

import pytest

from models.accounts import User
from models.imports.report import ImportReportRow
from models.imports.runs import ImportRun
from tasks.base import Cancelled, LeaseLost
from tasks.imports import ImportRequest, RunStopped, execute

AUTH = ["auth.users", "auth.identities"]


def secret_url(source) -> str:
    # The local server trusts its clients: the password stands for a real one and must never be shown.
    return source.url.replace("postgres@", "postgres:src-db-secret@", 1)


def test_a_lost_source_connection_fails_the_run_and_the_next_run_resumes_it(source, source_users):
    killed = []

    def lose_the_source(update) -> None:
        if not killed:
            killed.append(update.step)
            # Only this test's source database: other imports may run on the same server.
            source.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'hearth-import' AND datname = current_database()"
            )

    with pytest.raises(RunStopped) as caught:
        execute(ImportRequest(only=AUTH), source_url=secret_url(source), on_progress=lose_the_source, chunk_size=2)
    stopped = caught.value
    assert stopped.transient, "a lost connection may pass: a job tries again"
    failed = ImportRun.get_by_id(stopped.run_id)
    assert failed.status == "failed" and failed.finished_at is not None
    assert failed.error and "src-db-secret" not in failed.error and "src-db-secret" not in stopped.public_detail
    assert failed.view()["error"] == failed.error
    done_before = list(failed.checkpoint.get("done", []))
    read_before = failed.counts["auth.users"]["read"]
    assert read_before > 0

    resumed = execute(ImportRequest(only=AUTH), source_url=secret_url(source))
    assert resumed.id == failed.id, "the same options resume the failed run"
    assert ImportRun.get_by_id(failed.id).status == "succeeded" and ImportRun.get_by_id(failed.id).error is None
    assert resumed.counts["auth.users"]["read"] == len(source_users)
    if "auth.users" in done_before:
        assert read_before == len(source_users)
    assert ImportRun.select().count() == 1
    assert User.select().count() == resumed.counts["auth.users"]["inserted"]


def test_a_user_soft_deleted_after_import_is_deleted_at_source(source, source_users):
    gone = source_users["bcrypt_2a"].id
    execute(ImportRequest(only=AUTH), source_url=source.url)
    assert User.select().where(User.id == gone).exists()
    source.execute("UPDATE auth.users SET deleted_at = now(), updated_at = now() WHERE id = %s", (gone,))

    delta = execute(ImportRequest(only=AUTH, since="last"), source_url=source.url)
    rows = {(r["source_key"], r["reason"]): r for r in ImportReportRow.of_run(delta.id)}
    assert (gone, "deleted-at-source") in rows and "kept" in rows[(gone, "deleted-at-source")]["detail"]
    assert delta.counts["auth.users"]["deleted_at_source"] == 1
    assert User.select().where(User.id == gone).exists(), "kept until --apply-deletes"

    again = execute(ImportRequest(only=AUTH), source_url=source.url)
    assert "deleted_at_source" not in again.counts["auth.users"], "reported once, as a row deleted at the source"

    applied = execute(ImportRequest(only=AUTH, apply_deletes=True), source_url=source.url)
    assert applied.counts["auth.users"]["deletes_applied"] == 1
    assert not User.select().where(User.id == gone).exists()
    quiet = execute(ImportRequest(only=AUTH), source_url=source.url)
    assert not User.select().where(User.id == gone).exists()
    assert "deletes_applied" not in quiet.counts["auth.users"]


@pytest.mark.parametrize(("signal", "status"), [(Cancelled, "failed"), (LeaseLost, "running")])
def test_a_cancelled_job_or_a_lost_lease_is_not_turned_into_a_failure_of_the_job(source, signal, status):
    def stop(update) -> None:
        raise signal()

    # The job must see these as they are (cancelled; another worker owns the job now), not as an error.
    with pytest.raises(signal):
        execute(ImportRequest(only=AUTH), source_url=source.url, on_progress=stop, chunk_size=2)
    [run] = ImportRun.select()
    assert run.status == status
    assert run.error == ("cancelled" if signal is Cancelled else None)
