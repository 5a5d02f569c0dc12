"""Test fixtures: a real PostgreSQL database per test process, built by the migrations; real Redis.

Each test runs inside a transaction that is rolled back, and gets its own Redis
key prefix, so tests never see each other's rows, counters or events.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import uuid

import psycopg2
import pytest
import redis as redis_lib

from models import migrate
from models.db import db, make_database
from settings import Settings

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
_counter = itertools.count()


def _admin_connection():
    from models.db import connect_args

    conn = psycopg2.connect(**{("dbname" if k == "database" else k): v for k, v in connect_args(ADMIN_URL).items()})
    conn.autocommit = True
    return conn


def database_url(name: str) -> str:
    base, _, query = ADMIN_URL.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (("?" + query) if query else "")


def create_database(prefix: str = "hearth_test") -> tuple[str, str]:
    """Create an empty database with a unique name; returns (name, url)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return name, database_url(name)


def drop_database(name: str) -> None:
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def database(var_dir):
    """This test process's database, created empty and brought up by the migrations."""
    name, url = create_database()
    database = make_database(url, max_connections=8)
    db.initialize(database)
    with database.connection_context():
        migrate.upgrade(database)
    yield url
    database.close_all()
    drop_database(name)


def make_settings(database_url: str, var_dir: pathlib.Path, **overrides) -> Settings:
    environ = {
        "HEARTH_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "HEARTH_VAR_DIR": str(var_dir),
        "PUBLIC_URL": "http://hearth.test",
        # Message emails and texts go out at once unless a test asks for the delay.
        "MESSAGE_NOTIFICATION_DELAY": "0",
    }
    return Settings.from_env(environ, **overrides)


@pytest.fixture
def redis_prefix():
    prefix = f"test:{os.getpid()}:{next(_counter)}:{uuid.uuid4().hex[:6]}:"
    yield prefix
    client = redis_lib.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def settings(database, var_dir, redis_prefix, tmp_path) -> Settings:
    return make_settings(database, tmp_path, redis_prefix=redis_prefix)


@pytest.fixture
def redis(settings):
    client = redis_lib.Redis.from_url(settings.redis_url)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def transaction(request):
    """Every test that touches the database runs inside a transaction that is rolled back."""
    if "database" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("database")
    with db.connection_context(), db.atomic() as txn:
        yield
        txn.rollback()
