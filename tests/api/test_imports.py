"""``/v1/admin/imports``: an admin starts the Supabase import as a job and reads its counts and report;
the users it brought log in with their old passwords."""

from __future__ import annotations

import csv
import io
import json

import pytest

from models.accounts import User
from models.imports.runs import ImportRun
from models.jobs import Job
from tests.api.conftest import assert_problem
from tests.conftest import create_database, drop_database, make_settings
from tests.imports.supabase_db import IMPORTED, NOT_IMPORTED, SourceDatabase, population

AUTH = ["auth.users", "auth.identities"]


@pytest.fixture(scope="module")
def source_db():
    name, url = create_database("hearth_supabase_src")
    source = SourceDatabase(url)
    source.create_schema()
    yield source
    source.close()
    drop_database(name)


@pytest.fixture
def source_users(source_db):
    users = population()
    source_db.load(users)
    return users


@pytest.fixture
def settings(database, tmp_path, redis_prefix, source_db):
    # The password is never checked by the local server (trust); it stands for a real one.
    url = source_db.url.replace("postgres@", "postgres:src-db-secret@", 1)
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, supabase_source_db_url=url)


def start(client, headers, **body):
    return client.simulate_post("/v1/admin/imports", headers=headers, json={"only": AUTH, **body})


def test_an_admin_imports_and_reads_counts_and_report(client, jobs, auth_headers, admin, source_users):
    headers = auth_headers(admin)
    resp = start(client, headers)
    assert resp.status_code == 202, resp.text
    job = Job.get_by_id(resp.json["id"])
    assert (job.kind, job.queue) == ("imports.run_supabase", "imports")
    assert resp.headers["location"] == f"/v1/jobs/{job.id}"
    assert "src-db-secret" not in json.dumps(job.input) and "postgresql" not in json.dumps(job.input)
    assert_problem(start(client, headers), 409)
    jobs.run_pending()
    done = client.simulate_get(f"/v1/jobs/{job.id}", headers=headers).json
    assert done["status"] == "succeeded", done

    one = client.simulate_get(f"/v1/admin/imports/{job.id}", headers=headers)
    assert one.status_code == 200, one.text
    users = one.json["tables"]["auth.users"]
    assert users["read"] == len(source_users) and users["inserted"] == len(IMPORTED)
    assert users["skipped"] == {"anonymous": 1, "deleted": 1, "duplicate-email": 1}
    listed = client.simulate_get("/v1/admin/imports", headers=headers).json["items"]
    assert [item["id"] for item in listed] == [one.json["id"]]

    jsonl = client.simulate_get(f"/v1/admin/imports/{one.json['id']}/report", headers=headers)
    assert jsonl.status_code == 200 and jsonl.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in jsonl.text.splitlines()]
    reasons = {row["source_key"]: row["reason"] for row in rows}
    for name, reason in NOT_IMPORTED.items():
        assert reasons[source_users[name].id] == reason
    as_csv = client.simulate_get(f"/v1/admin/imports/{job.id}/report", params={"format": "csv"}, headers=headers)
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(as_csv.text)))) == len(rows)


def test_only_admins_and_no_secrets_in_the_body(client, auth_headers, admin, user, source_users):
    assert_problem(start(client, auth_headers(user)), 403)
    assert_problem(client.simulate_get("/v1/admin/imports", headers=auth_headers(user)), 403)
    headers = auth_headers(admin)
    assert_problem(start(client, headers, source_db="postgresql://x:y@h/db"), 422)
    assert_problem(start(client, headers, since="yesterday"), 422, field="body.since")
    assert_problem(start(client, headers, mapping="x" * (256 * 1024 + 1)), 422, field="body.mapping")
    assert_problem(client.simulate_get("/v1/admin/imports/not-an-id", headers=headers), 404)
    assert_problem(client.simulate_get("/v1/admin/imports/00000000-0000-0000-0000-000000000000", headers=headers), 404)


def test_imported_users_log_in_with_their_old_passwords(client, jobs, auth_headers, admin, source_users):
    assert start(client, auth_headers(admin)).status_code == 202
    jobs.run_pending()
    for name in sorted(IMPORTED):
        source = source_users[name]
        if source.password is None:
            continue
        resp = client.simulate_post("/v1/auth/login", json={"email": source.email, "password": source.password})
        if name == "unconfirmed":
            assert_problem(resp, 401)  # an unconfirmed email stays unverified: the import opens no door
        elif name == "banned_future":
            assert_problem(resp, 403)
        else:
            assert resp.status_code == 200, (name, resp.text)
            assert User.get_by_id(source.id).password_hash.startswith("$argon2id$")
    wrong = client.simulate_post("/v1/auth/login", json={"email": "ana@example.com", "password": "not-it-at-all"})
    assert_problem(wrong, 401)


def test_a_failed_run_shows_its_problem(client, auth_headers, admin):
    run = ImportRun.start({"only": AUTH})
    run.finish("failed", "SourceError: cannot read auth.users: server closed the connection unexpectedly")
    one = client.simulate_get(f"/v1/admin/imports/{run.id}", headers=auth_headers(admin))
    assert one.status_code == 200, one.text
    assert one.json["status"] == "failed" and "server closed the connection" in one.json["error"]
    listed = client.simulate_get("/v1/admin/imports", headers=auth_headers(admin)).json["items"]
    assert listed[0]["error"] == one.json["error"]
