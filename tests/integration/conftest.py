"""Fixtures for tests that run real processes against committed data.

These tests do not use the rolled-back transaction: each gets a fresh
database built by the migrations and a Redis database of its own, so the
processes they start see exactly what the test wrote.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis as redis_lib

from models import migrate
from models.db import db, make_database
from tests.conftest import REDIS_URL, create_database, drop_database


@pytest.fixture
def live_env(tmp_path):
    """A committed, migrated database and an isolated Redis database; yields the child env vars."""
    name, url = create_database("hearth_it")
    database = make_database(url, max_connections=4)
    with database.connection_context():
        migrate.upgrade(database)
    database.close_all()
    # Redis database 1-15 chosen per test process: Celery's broker keys are not prefixed.
    redis_db = 1 + (os.getpid() % 15)
    redis_url = REDIS_URL.rsplit("/", 1)[0] + f"/{redis_db}"
    broker = redis_lib.Redis.from_url(redis_url)
    prefix = f"it:{uuid.uuid4().hex[:8]}:"
    env = {
        "HEARTH_ENV": "test",
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "REDIS_PREFIX": prefix,
        "HEARTH_VAR_DIR": str(tmp_path / "var"),
        "PUBLIC_URL": "http://hearth.test",
        "MESSAGE_NOTIFICATION_DELAY": "0",
    }
    yield env
    broker.flushdb()
    broker.close()
    drop_database(name)


@pytest.fixture
def live_db(live_env):
    """Bind the models to the live database (committed writes, no test transaction)."""
    previous = db.obj
    database = make_database(live_env["DATABASE_URL"], max_connections=4)
    db.initialize(database)
    yield database
    database.close_all()
    db.initialize(previous)


@pytest.fixture
def logs(tmp_path):
    """A folder for the started processes' output, shown when a test fails."""
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def procs():
    """Processes a test starts; stopped (in reverse order) when it ends."""
    started = []
    yield started
    for proc in reversed(started):
        proc.stop()
