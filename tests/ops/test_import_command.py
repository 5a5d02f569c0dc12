"""``hearth import supabase`` as a real process: exit codes, the report file, and a ``kill -9`` mid-run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import psycopg2
import pytest

from settings import ROOT
from tests.conftest import REDIS_URL, create_database, drop_database
from tests.imports.supabase_db import NOT_IMPORTED, SourceDatabase, population
from tests.ops.test_cli import BASE_ENV, hearth

AUTH = "auth.users,auth.identities"


@pytest.fixture(scope="module")
def source_db():
    name, url = create_database("hearth_supabase_src")
    source = SourceDatabase(url)
    source.create_schema()
    yield source
    source.close()
    drop_database(name)


@pytest.fixture
def target(tmp_path):
    """An empty Hearth database brought up by ``hearth db upgrade``; its environment for ``hearth``."""
    name, url = create_database("hearth_import_target")
    env = {**BASE_ENV, "DATABASE_URL": url, "REDIS_URL": REDIS_URL, "HEARTH_VAR_DIR": str(tmp_path)}
    assert hearth("db", "upgrade", env=env).returncode == 0
    yield env, url
    drop_database(name)


def query(url: str, sql: str, params=()):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def test_exit_codes_report_file_and_a_quiet_second_run(source_db, target, tmp_path):
    env, _ = target
    users = population()
    source_db.load(users)
    report = tmp_path / "report.csv"
    first = hearth("import", "supabase", "--source-db", source_db.url, "--only", AUTH, "--report", str(report), env=env)
    assert first.returncode == 1, first.stderr
    lines = [json.loads(line) for line in first.stdout.splitlines()]
    assert [line.get("step") for line in lines[:2]] == ["auth.users", "auth.identities"]
    assert lines[-1]["tables"]["auth.users"]["read"] == len(users)
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    reasons = {row["source_key"]: row["reason"] for row in rows}
    for name, reason in NOT_IMPORTED.items():
        assert reasons[users[name].id] == reason
    assert reasons[users["oauth"].id] == "no-password"

    again = hearth("import", "supabase", "--source-db", source_db.url, "--only", AUTH, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1])["tables"]["auth.users"]["unchanged"] == len(users)


def test_bad_input_exits_2_and_writes_nothing(source_db, target):
    env, url = target
    secret_url = "postgresql://importer:hunter2-secret@127.0.0.1:1/supabase"
    unreachable = hearth("import", "supabase", "--source-db", secret_url, "--only", AUTH, env=env)
    assert unreachable.returncode == 2
    assert "hunter2-secret" not in unreachable.stderr + unreachable.stdout
    assert "Traceback" not in unreachable.stderr
    no_mapping = hearth("import", "supabase", "--source-db", source_db.url, env=env)
    assert no_mapping.returncode == 2 and "--mapping" in no_mapping.stderr
    bad_since = hearth("import", "supabase", "--source-db", source_db.url, "--only", AUTH, "--since", "yday", env=env)
    assert bad_since.returncode == 2
    assert query(url, "SELECT count(*) FROM import_runs") == [(0,)]


def test_a_run_killed_with_sigkill_resumes_without_duplicates(source_db, target):
    env, url = target
    source_db.reset()
    source_db.execute(
        "INSERT INTO auth.users (id, email, encrypted_password, email_confirmed_at, created_at, updated_at,"
        " raw_app_meta_data, raw_user_meta_data)"
        " SELECT gen_random_uuid(), 'bulk' || i || '@example.com', '$2b$04$' || repeat('a', 53), now(),"
        " now() - i * interval '1 minute', now() - i * interval '1 minute', '{}',"
        " jsonb_build_object('name', 'Bulk ' || i)"
        " FROM generate_series(1, 4000) AS i"
    )
    args = [sys.executable, "-m", "ops.cli", "import", "supabase", "--source-db", source_db.url, "--only", AUTH]
    process = subprocess.Popen([*args, "--chunk-size", "20"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            done = query(url, "SELECT checkpoint -> 'at' ? 'auth.users' FROM import_runs")
            if done and done[0][0]:
                break
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    [(status, partial)] = query(url, "SELECT status, (counts -> 'auth.users' ->> 'read')::int FROM import_runs")
    assert status == "running" and 0 < partial < 4000, "killed after the first checkpoint, before the end"

    resumed = subprocess.run(
        [*args, "--chunk-size", "500"], check=False, cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout.splitlines()[-1])
    assert summary["tables"]["auth.users"]["read"] == 4000
    assert query(url, "SELECT count(*), count(DISTINCT email) FROM users") == [(4000, 4000)]
    assert query(url, "SELECT count(*), count(DISTINCT status) FROM import_runs") == [(1, 1)]


def test_a_lost_source_connection_exits_3_marks_the_run_failed_and_the_same_command_resumes(source_db, target):
    env, url = target
    source_db.reset()
    source_db.execute(
        "INSERT INTO auth.users (id, email, encrypted_password, email_confirmed_at, created_at, updated_at,"
        " raw_app_meta_data, raw_user_meta_data)"
        " SELECT gen_random_uuid(), 'lost' || i || '@example.com', '$2b$04$' || repeat('a', 53), now(),"
        " now() - i * interval '1 minute', now() - i * interval '1 minute', '{}', '{}'"
        " FROM generate_series(1, 4000) AS i"
    )
    secret_url = source_db.url.replace("postgres@", "postgres:src-db-secret@", 1)
    args = [sys.executable, "-m", "ops.cli", "import", "supabase", "--source-db", secret_url, "--only", AUTH]
    process = subprocess.Popen(
        [*args, "--chunk-size", "20"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = query(url, "SELECT checkpoint -> 'at' ? 'auth.users' FROM import_runs")
        if done and done[0][0]:
            break
        time.sleep(0.01)
    source_db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hearth-import'")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err
    assert "the import stopped" in err and "run the same command again" in err.lower()
    assert "src-db-secret" not in out + err and "Traceback" not in err
    [(status, error)] = query(url, "SELECT status, error FROM import_runs")
    assert status == "failed" and error and "src-db-secret" not in error

    resumed = subprocess.run(args, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert query(url, "SELECT count(*), min(status), bool_and(error IS NULL) FROM import_runs") == [
        (1, "succeeded", True)
    ]
    assert query(url, "SELECT count(*), count(DISTINCT email) FROM users") == [(4000, 4000)]
