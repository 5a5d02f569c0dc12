"""A private Hearth for one benchmark run: its own database, Redis prefix, keys and user.

``HearthStack`` creates ``bench_<pid>`` on the PostgreSQL server named by
``BENCH_DATABASE_URL`` (an admin URL), migrates it, adds one user with a known
password, and gives the environment a gunicorn under test needs. ``close()``
drops the database and deletes every Redis key under the run's prefix.

Limits that would throttle a load generator (rate limits, login lockout) are
raised in that environment; ``overrides`` lists them so the report can say so.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
import urllib.request
import uuid

import psycopg2
import redis as redis_lib

ADMIN_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

EMAIL = "bench.user@hearth.test"
PASSWORD = "Bench-run-7f3a-Hearth"  # noqa: S105 - the bench user of a throwaway database; passes the password policy
FULL_NAME = "Bench User"

# Far above anything wrk can send in a run, so every request does the limiter's
# work (one Redis round trip) but none is refused.
UNLIMITED = "1000000000/minute"
OVERRIDES = {
    "RATE_LIMIT_DEFAULT": UNLIMITED,
    "RATE_LIMIT_AUTH": UNLIMITED,
    "LOGIN_LOCKOUT_THRESHOLD": "1000000000",
    "LOGIN_IP_LOCKOUT_THRESHOLD": "1000000000",
    # The fan-out benchmark measures sending, not the wait before a message notification is sent.
    "MESSAGE_NOTIFICATION_DELAY": "0",
}


def _admin_connection():
    from models.db import connect_args

    args = connect_args(ADMIN_URL)
    args["dbname"] = args.pop("database")
    conn = psycopg2.connect(**args)
    conn.autocommit = True
    return conn


def _database_url(name: str) -> str:
    base, _, query = ADMIN_URL.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (("?" + query) if query else "")


class HearthStack:
    def __init__(self, var_dir, log=print):
        self.log = log
        self.var_dir = var_dir
        self.db_name = f"bench_{os.getpid()}"
        self.database_url = _database_url(self.db_name)
        self.redis_prefix = f"bench:{os.getpid()}:{uuid.uuid4().hex[:6]}:"
        self.created = False
        self.env: dict[str, str] = {}
        self.redis = redis_lib.Redis.from_url(REDIS_URL)

    @property
    def overrides(self) -> dict[str, str]:
        return dict(OVERRIDES)

    def open(self) -> HearthStack:
        from models import migrate
        from models.accounts import User
        from models.base import utcnow
        from models.db import db, make_database
        from models.passwords import hash_password
        from services.tokens import generate_private_pem

        conn = _admin_connection()
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{self.db_name}"')
        conn.close()
        self.created = True
        database = make_database(self.database_url, max_connections=2)
        db.initialize(database)
        with database.connection_context():
            applied = migrate.upgrade(database)
            User.create(
                email=EMAIL,
                password_hash=hash_password(PASSWORD),
                full_name=FULL_NAME,
                role="buyer",
                email_verified_at=utcnow(),
            )
        database.close_all()
        self.log(f"database {self.db_name}: {len(applied)} migrations applied, user {EMAIL} created")
        self.env = {
            "HEARTH_ENV": "development",
            "HEARTH_VAR_DIR": str(self.var_dir),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": self.redis_prefix,
            "JWT_PRIVATE_KEYS": generate_private_pem(),
            **OVERRIDES,
        }
        return self

    def close(self) -> None:
        try:
            keys = list(self.redis.scan_iter(match=self.redis_prefix + "*", count=1000))
            if keys:
                self.redis.delete(*keys)
            self.redis.close()
        finally:
            if self.created:
                conn = _admin_connection()
                with conn.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
                conn.close()
                self.created = False

    def __enter__(self) -> HearthStack:
        try:
            return self.open()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def broker_url(db_index: int) -> str:
    """A Redis database of its own for one benchmark's broker, on the benchmark Redis."""
    return f"{REDIS_URL.rsplit('/', 1)[0]}/{db_index}"


@contextlib.contextmanager
def workspace(run, name: str, broker_db: int | None = None):
    """``(hearth, directory, broker)``: a temporary directory, an empty broker database, a ``HearthStack``.

    The broker database must be empty (another benchmark may be using it) and is
    flushed afterwards; the directory is removed after a run that finished, and
    kept (its logs named in the report) after one that failed.
    """
    broker = None
    if broker_db is not None:
        broker = redis_lib.Redis.from_url(broker_url(broker_db))
        if broker.dbsize():
            broker.close()
            raise RuntimeError(f"Redis database {broker_db} is not empty; set BENCH_BROKER_DB to an unused one")
    directory = pathlib.Path(tempfile.mkdtemp(prefix=f"hearth-bench-{name}-"))
    ok = False
    try:
        with HearthStack(directory / "var", log=run.log) as hearth:
            yield hearth, directory, broker
        ok = True
    finally:
        if broker is not None:
            broker.flushdb()
            broker.close()
        if ok:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            run.log(f"{name} logs kept in {directory}")


def redis_cpu_seconds(client) -> float:
    """CPU time the Redis server has used so far (all its clients, not only this run)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def login_body() -> str:
    return json.dumps({"email": EMAIL, "password": PASSWORD})


def post_json(url: str, body: str) -> dict:
    return _json(url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"})


def get_json(url: str, headers: dict) -> dict:
    return _json(url, headers=headers)


def _json(url: str, **request) -> dict:
    """The JSON answer of one of the bench's own servers (``http://127.0.0.1:PORT/...``)."""
    if not url.startswith("http://"):
        raise ValueError(f"not a URL of a bench server: {url!r}")
    with urllib.request.urlopen(urllib.request.Request(url, **request), timeout=10) as answer:  # noqa: S310 - http only, checked above
        return json.loads(answer.read())
