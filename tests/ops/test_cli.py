"""The ``hearth`` command and ``hearth run``'s supervisor, run as real processes."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time

import psycopg2
import pytest

import celeryconfig
from models.migrate import MIGRATIONS_DIR
from models.passwords import verify_password
from ops.clamd import _ping
from ops.supervisor import read_procfile
from settings import ROOT
from tests.conftest import create_database, drop_database

MIGRATIONS = sorted(p.stem for p in MIGRATIONS_DIR.glob("[0-9]*.py"))
STRONG_PASSWORD = "lantern-quarry-47-oxbow"
# What the shell that runs `hearth` would have, minus anything naming a real deployment.
BASE_ENV = {
    k: v for k, v in os.environ.items() if not k.startswith("HEARTH_") and k not in ("DATABASE_URL", "REDIS_URL")
}


def hearth(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        cwd=ROOT,
        env=env or BASE_ENV,
        input=stdin,
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
    )


def assert_clean_failure(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def database_env(tmp_path):
    """Environment pointing ``hearth`` at a new, empty database; dropped afterwards."""
    name, url = create_database("hearth_ops")
    yield {**BASE_ENV, "DATABASE_URL": url, "HEARTH_VAR_DIR": str(tmp_path)}
    drop_database(name)


def query(env: dict[str, str], sql: str, *params):
    from models.db import connect_args

    args = connect_args(env["DATABASE_URL"])
    conn = psycopg2.connect(dbname=args.pop("database"), **args)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


# ----------------------------------------------------------------------------- errors


def test_unsafe_production_settings_are_refused_without_a_traceback(tmp_path):
    result = hearth("db", "status", env={**BASE_ENV, "HEARTH_ENV": "production"})
    assert_clean_failure(result, "invalid settings")
    assert "DATABASE_URL is required in production" in result.stderr
    assert "SECRET_KEY" in result.stderr


def test_unreachable_database_is_a_clean_error(tmp_path):
    env = {**BASE_ENV, "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/hearth"}
    result = hearth("db", "upgrade", env=env)
    assert_clean_failure(result, "cannot reach the database at postgresql://postgres@127.0.0.1:9/hearth")


# ----------------------------------------------------------------------------- db


def test_db_upgrade_status_downgrade_round_trip(database_env):
    status = hearth("db", "status", env=database_env)
    assert status.returncode == 0, status.stderr
    assert f"0 applied, {len(MIGRATIONS)} pending" in status.stdout

    first = hearth("db", "upgrade", MIGRATIONS[0], env=database_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["applied", MIGRATIONS[0]]

    rest = hearth("db", "upgrade", env=database_env)
    assert rest.stdout.split() == [word for name in MIGRATIONS[1:] for word in ("applied", name)]
    assert hearth("db", "upgrade", env=database_env).stdout.strip() == "the database is up to date"
    assert query(database_env, "SELECT to_regclass('users') IS NOT NULL") == [(True,)]

    status = hearth("db", "status", env=database_env).stdout
    assert f"{len(MIGRATIONS)} applied, 0 pending" in status
    assert "pending  " not in status

    newest = hearth("db", "downgrade", env=database_env)
    assert newest.stdout.split() == ["reverted", MIGRATIONS[-1]]
    assert re.search(rf"pending\s+{MIGRATIONS[-1]}", hearth("db", "status", env=database_env).stdout)

    unknown = hearth("db", "downgrade", "9999_nothing", env=database_env)
    assert_clean_failure(unknown, "9999_nothing")

    everything = hearth("db", "downgrade", MIGRATIONS[0], env=database_env)
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.split()[-1] == MIGRATIONS[0]
    assert query(database_env, "SELECT to_regclass('users') IS NULL") == [(True,)]
    assert hearth("db", "downgrade", env=database_env).stdout.strip() == "no migration is applied; nothing to revert"


# ----------------------------------------------------------------------------- users


def test_create_admin_needs_the_schema_first(database_env):
    result = hearth(
        "users",
        "create-admin",
        "--email",
        "a@example.com",
        "--full-name",
        "Ada",
        "--password-stdin",
        env=database_env,
        stdin=STRONG_PASSWORD + "\n",
    )
    assert_clean_failure(result, "run `hearth db upgrade` first")


def test_create_admin_creates_a_verified_admin_and_refuses_duplicates_and_weak_passwords(database_env):
    assert hearth("db", "upgrade", env=database_env).returncode == 0

    created = hearth(
        "users",
        "create-admin",
        "--email",
        " Ada@Example.COM ",
        "--full-name",
        "Ada Lovelace",
        "--password-stdin",
        env=database_env,
        stdin=STRONG_PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert "created admin ada@example.com" in created.stdout
    [(email, full_name, role, verified, password_hash)] = query(
        database_env, "SELECT email, full_name, role, email_verified_at IS NOT NULL, password_hash FROM users"
    )
    assert (email, full_name, role, verified) == ("ada@example.com", "Ada Lovelace", "admin", True)
    assert verify_password(password_hash, STRONG_PASSWORD)  # the trailing newline is not part of it
    assert query(database_env, "SELECT action, target_type FROM audit_log") == [("user.create_admin", "user")]

    duplicate = hearth(
        "users",
        "create-admin",
        "--email",
        "ADA@example.com",
        "--full-name",
        "Someone Else",
        "--password-stdin",
        env=database_env,
        stdin="another-long-passphrase-9\n",
    )
    assert_clean_failure(duplicate, "a user with email ada@example.com already exists")

    weak = hearth(
        "users",
        "create-admin",
        "--email",
        "bob@example.com",
        "--full-name",
        "Bob",
        "--password-stdin",
        env=database_env,
        stdin="password1\n",
    )
    assert_clean_failure(weak, "password is one of the most common passwords")
    short = hearth(
        "users",
        "create-admin",
        "--email",
        "bob@example.com",
        "--full-name",
        "Bob",
        "--password-stdin",
        env=database_env,
        stdin="x7#k\n",
    )
    assert_clean_failure(short, "password must be at least")
    assert query(database_env, "SELECT count(*) FROM users") == [(1,)]


# ----------------------------------------------------------------------------- keys


def test_keys_generate_prints_an_ed25519_key_the_api_accepts():
    from services.tokens import KeyRing

    result = hearth("keys", "generate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN PRIVATE KEY-----")
    ring = KeyRing.from_pem(result.stdout)
    assert ring.signing_kid != KeyRing.from_pem(hearth("keys", "generate").stdout).signing_kid


# ----------------------------------------------------------------------------- run


def test_procfile_lists_every_process_and_the_worker_consumes_every_queue():
    processes = read_procfile()
    assert list(processes) == ["release", "web", "relay", "worker", "beat", "metrics", "flower"]
    assert processes["release"] == "exec hearth db upgrade"
    assert processes["metrics"] == "exec hearth metrics"
    queues = re.search(r" -Q (\S+)", processes["worker"]).group(1).split(",")
    assert sorted(queues) == sorted(celeryconfig.QUEUES)
    assert "FLOWER_BASIC_AUTH" in processes["flower"] and "--basic-auth" not in processes["flower"]


def start_supervisor(procfile, env) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import pathlib, sys
        from ops import supervisor
        from settings import Settings
        sys.exit(supervisor.run(Settings.from_env(), procfile=pathlib.Path({str(procfile)!r})))
    """)
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def read_until(process: subprocess.Popen, *patterns: str, timeout: float = 30) -> str:
    """The supervisor's output up to the line where every pattern has been seen."""
    lines, waiting, deadline = [], list(patterns), time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        waiting = [p for p in waiting if not re.search(p, line)]
    if waiting:
        raise AssertionError(f"{waiting!r} not seen in:\n{''.join(lines)}")
    return "".join(lines)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes; only its parent has not reaped it yet.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


SLEEPER = "exec {python} -c \"import os, time; print('{name} pid', os.getpid(), flush=True); time.sleep(120)\""


@pytest.fixture
def supervised(database_env, tmp_path):
    """Start ``hearth run`` on a Procfile; ``broker_db``: a Redis database of its own (Celery's keys are bare)."""
    started = []

    def start(procfile_text: str, broker_db: bool = False) -> subprocess.Popen:
        redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
        if broker_db:
            redis_url = redis_url.rsplit("/", 1)[0] + f"/{1 + os.getpid() % 15}"
        start.env = {**database_env, "REDIS_URL": redis_url}
        procfile = tmp_path / "Procfile"
        procfile.write_text(procfile_text)
        process = start_supervisor(procfile, start.env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()
    if getattr(start, "env", {}).get("REDIS_URL", "").rsplit("/", 1)[-1] != "0":
        import redis as redis_lib

        client = redis_lib.Redis.from_url(start.env["REDIS_URL"])
        client.flushdb()
        client.close()


def test_run_prefixes_output_and_ctrl_c_stops_every_child(supervised):
    procfile = "\n".join(
        [
            "release: exec false",  # never run by `hearth run`: it migrates itself
            "alpha: " + SLEEPER.format(python=sys.executable, name="alpha"),
            # A shell that does not exec: its child must go too.
            "beta: " + SLEEPER.format(python=sys.executable, name="beta").replace("exec ", "") + "; true",
        ]
    )
    supervisor = supervised(procfile)
    output = read_until(supervisor, r"Press Ctrl-C to stop", r"alpha +\| alpha pid", r"beta +\| beta pid")
    assert "migrations: " + ", ".join(MIGRATIONS) in output
    assert "started release" not in output
    pids = [int(m) for m in re.findall(r"(?:alpha|beta) +\| (?:alpha|beta) pid (\d+)", output)]
    assert len(pids) == 2
    # With no CLAMD_URL the development clamd runs beside the stack, and the children are told where.
    socket_path = pathlib.Path(supervised.env["HEARTH_VAR_DIR"]).resolve() / "clamd" / "clamd.sock"
    assert f"clamd     unix://{socket_path}  (development, test signature only)" in output
    assert _ping(socket_path)
    clamd_pid = int((socket_path.parent / "clamd.pid").read_text())

    supervisor.send_signal(signal.SIGINT)
    assert supervisor.wait(timeout=20) == 0
    assert not [pid for pid in pids if alive(pid)]
    assert not alive(clamd_pid)


def test_a_child_that_keeps_dying_is_restarted_ever_later(supervised):
    supervisor = supervised("crash: echo giving up; exit 3\n")
    output = read_until(supervisor, r"crash exited with code 3; restarting it in 4 s \(3 exits in a row\)", timeout=30)
    assert "crash exited with code 3; restarting it in 1 s\n" in output
    assert "crash exited with code 3; restarting it in 2 s (2 exits in a row)" in output
    assert len(re.findall(r"crash +\| giving up", output)) == 3
    assert supervisor.poll() is None  # the stack keeps running
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=20) == 0


def _process_group(pgid: int) -> list[int]:
    members = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_a_worker_killed_with_sigkill_comes_back(supervised):
    worker = (
        "worker: exec celery -A tasks worker -Q default --pool=prefork -c 1 --without-gossip "
        "--without-mingle --without-heartbeat -l info"
    )
    supervisor = supervised(worker + "\n", broker_db=True)
    output = read_until(supervisor, r"started worker \(pid \d+\)", r"worker +\| .*ready\.", timeout=60)
    [pid] = [int(p) for p in re.findall(r"started worker \(pid (\d+)\)", output)]
    group = _process_group(pid)
    assert len(group) >= 2  # the worker and its pool process

    os.kill(pid, signal.SIGKILL)  # the main process only, as in a crash: its pool child is orphaned
    output = read_until(
        supervisor,
        r"worker exited with code -9; restarting it in 1 s",
        r"started worker \(pid \d+\)",
        r"worker +\| .*ready\.",
        timeout=60,
    )
    [new_pid] = [int(p) for p in re.findall(r"started worker \(pid (\d+)\)", output)]
    assert new_pid != pid and alive(new_pid)
    assert not [p for p in group if alive(p)], "the dead worker's pool process was left running"

    supervisor.send_signal(signal.SIGINT)
    assert supervisor.wait(timeout=30) == 0
    assert not alive(new_pid)


def test_hearth_commands_reach_the_servers_of_the_running_stack(supervised, database_env):
    import redis as redis_lib

    supervisor = supervised("alpha: " + SLEEPER.format(python=sys.executable, name="alpha") + "\n", broker_db=True)
    output = read_until(supervisor, r"Press Ctrl-C to stop")
    broker_url = supervised.env["REDIS_URL"]
    assert f"Redis     {broker_url}" in output
    # A second terminal: the same var/, no DATABASE_URL or REDIS_URL of its own.
    shell = {k: v for k, v in database_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    seeded = hearth("demo", "seed", "--listings", "40", "--seed", "5", env=shell)
    assert seeded.returncode == 0, seeded.stderr
    assert query(database_env, "SELECT count(*) FROM properties") == [(40,)]
    [(job_id, status)] = query(database_env, "SELECT id, status FROM jobs WHERE kind = 'search.rebuild_index'")
    broker = redis_lib.Redis.from_url(broker_url)
    try:
        queued = [json.loads(m) for m in broker.lrange("search", 0, -1)]
    finally:
        broker.close()
    assert [m["headers"]["argsrepr"] for m in queued] == [repr([str(job_id)])], queued
    assert status == "queued"

    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=20) == 0
    assert not (pathlib.Path(database_env["HEARTH_VAR_DIR"]) / "stack.json").exists()


# ----------------------------------------------------------------------------- configuration files


def test_env_example_documents_every_setting():
    import dataclasses

    import settings

    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", text, re.M))
    for f in dataclasses.fields(settings.Settings):
        name = ("HEARTH_" if f.name in settings._HEARTH_PREFIXED else "") + f.name.upper()
        assert name in documented, f"{name} is missing from .env.example"


# ----------------------------------------------------------------------------- listening addresses


def test_development_refuses_to_listen_beyond_loopback(database_env):
    run = hearth("run", env={**database_env, "RELAY_BIND": "0.0.0.0:8001"})
    assert_clean_failure(run, "RELAY_BIND=0.0.0.0:8001 listens beyond this machine")

    # A --bind given to gunicorn directly replaces WEB_BIND: it is checked too.
    from tests.integration.processes import free_port

    port = free_port()
    env = {
        **database_env,
        "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "GUNICORN_CMD_ARGS": f"--bind 0.0.0.0:{port} --workers 1",
        "PYTHONPATH": str(ROOT),
    }
    web = subprocess.run(
        [str(pathlib.Path(sys.executable).parent / "gunicorn"), "-c", "ops/gunicorn.conf.py", "api.wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert web.returncode == 1, web.stderr
    assert f"--bind 0.0.0.0:{port} listens beyond this machine" in web.stderr
    assert "Listening at" not in web.stderr
