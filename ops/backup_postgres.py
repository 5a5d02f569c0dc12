"""The PostgreSQL half of a backup: the server's own ``pg_dump`` / ``pg_restore``, one snapshot, row counts.

``pg_dump`` writes a dump the server of its own major version (or older) can read, and refuses a
newer server; ``pg_restore`` reads dumps of its own version or older. So the tools are looked up per
server, by its major version (``tool_for``): ``PG_BIN_DIR`` first when set, then Debian's
``/usr/lib/postgresql/<major>/bin`` (the machine's PostgreSQL and the image's client), then the
binaries of the embedded ``pgserver`` PostgreSQL that ``hearth run`` and the tests start, then
``PATH``. A tool of exactly the server's major version is preferred; a newer one is used only when no
exact one exists (it still reads the older server); an older one never.

Counts and dump share one snapshot (``consistent_dump``): a REPEATABLE READ transaction exports its
snapshot (``pg_export_snapshot()``), counts every table in it, and ``pg_dump --snapshot`` dumps
exactly what was counted while the transaction stays open.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pathlib
import re
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from models.db import connect_args

TOOL_TIMEOUT = 6 * 3600
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")
# What counts as Hearth's data: every table outside PostgreSQL's own schemas.
_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""


class PostgresError(Exception):
    """A dump, restore or database step failed; the message says which and why."""


@dataclass(frozen=True)
class Tool:
    path: str
    major: int


def connect(url: str, *, autocommit: bool = False):
    try:
        conn = psycopg2.connect(**connect_args(url), connect_timeout=5, application_name="hearth-backup")
    except psycopg2.OperationalError as exc:
        raise PostgresError(f"cannot reach PostgreSQL: {str(exc).strip().splitlines()[0]}") from None
    conn.autocommit = autocommit
    return conn


def server_major(url: str) -> int:
    with contextlib.closing(connect(url, autocommit=True)) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version_num")
        return int(cur.fetchone()[0]) // 10000


def _candidate_dirs(major: int) -> Iterator[pathlib.Path]:
    if os.environ.get("PG_BIN_DIR"):
        yield pathlib.Path(os.environ["PG_BIN_DIR"])
    yield pathlib.Path(f"/usr/lib/postgresql/{major}/bin")
    lib = pathlib.Path("/usr/lib/postgresql")
    if lib.is_dir():
        yield from sorted((p / "bin" for p in lib.iterdir()), reverse=True)
    with contextlib.suppress(ImportError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        yield pathlib.Path(pgserver.__file__).parent / "pginstall" / "bin"


def _major_of(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out)
    return int(match.group(1)) if match else None


def tool_for(name: str, major: int) -> Tool:
    """``pg_dump`` or ``pg_restore`` for a server of ``major``: the exact major if any, else the nearest newer one."""
    found: list[Tool] = []
    seen: set[str] = set()
    for path in itertools.chain((str(d / name) for d in _candidate_dirs(major)), [shutil.which(name) or ""]):
        if not path or path in seen or not os.access(path, os.X_OK):
            continue
        seen.add(path)
        version = _major_of(path)
        if version == major:
            return Tool(path, version)
        if version is not None and version > major:
            found.append(Tool(path, version))
    if found:
        return min(found, key=lambda tool: tool.major)
    raise PostgresError(
        f"no {name} for PostgreSQL {major} (looked in PG_BIN_DIR, /usr/lib/postgresql/*/bin, pgserver and PATH); "
        f"install postgresql-client-{major} or set PG_BIN_DIR"
    )


def libpq_env(url: str) -> dict[str, str]:
    """The connection as libpq environment variables: the password never appears in a process list."""
    args = connect_args(url)
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD", "database": "PGDATABASE"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k == "PG_BIN_DIR"}
    env.update({names[key]: str(value) for key, value in args.items() if key in names})
    if "sslmode" in args:
        env["PGSSLMODE"] = str(args["sslmode"])
    return env


def _run(tool: Tool, args: list[str], url: str, what: str) -> None:
    try:
        done = subprocess.run(
            [tool.path, *args], env=libpq_env(url), capture_output=True, text=True, timeout=TOOL_TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise PostgresError(f"{what} did not run: {exc}") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise PostgresError(f"{what} failed ({pathlib.Path(tool.path).name} exit {done.returncode}): {tail}")


def tables(cur) -> list[str]:
    cur.execute(_TABLES)
    return [f"{schema}.{name}" for schema, name in cur.fetchall()]


def row_counts(cur) -> dict[str, int]:
    counts = {}
    for qualified in tables(cur):
        schema, name = qualified.split(".", 1)
        cur.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
        counts[qualified] = int(cur.fetchone()[0])
    return counts


def migration_head(cur) -> str | None:
    cur.execute("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    if not cur.fetchone()[0]:
        return None
    cur.execute("SELECT max(name) FROM schema_migrations")
    return cur.fetchone()[0]


@dataclass(frozen=True)
class Snapshot:
    counts: dict[str, int]
    migration_head: str | None
    server_major: int
    pg_dump: Tool


def consistent_dump(url: str, out: pathlib.Path) -> Snapshot:
    """``pg_dump -Fc`` into ``out``; the counts and migration head returned are of the very snapshot dumped."""
    major = server_major(url)
    tool = tool_for("pg_dump", major)
    with contextlib.closing(connect(url)) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot()")
            snapshot = cur.fetchone()[0]
            counts = row_counts(cur)
            head = migration_head(cur)
            # The transaction stays open until pg_dump has imported and used the snapshot.
            _run(tool, ["-Fc", "--no-owner", "--no-acl", f"--snapshot={snapshot}", "-f", str(out)], url, "pg_dump")
        conn.rollback()
    return Snapshot(counts, head, major, tool)


def restore(url: str, dump: pathlib.Path) -> Tool:
    """``pg_restore`` the dump into the database at ``url`` in one transaction: all of it, or nothing."""
    tool = tool_for("pg_restore", server_major(url))
    args = ["--no-owner", "--no-acl", "--exit-on-error", "--single-transaction"]
    _run(tool, [*args, "-d", str(connect_args(url).get("database", "postgres")), str(dump)], url, "pg_restore")
    return tool


def reset_database(url: str) -> None:
    """Drop every schema but PostgreSQL's own and make an empty ``public``: what ``restore --force`` replaces."""
    with contextlib.closing(connect(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND nspname NOT LIKE 'pg\\_%'"
        )
        for (schema,) in cur.fetchall():
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        cur.execute("CREATE SCHEMA public")
        conn.commit()


def live_counts(url: str) -> dict[str, int]:
    with contextlib.closing(connect(url)) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            counts = row_counts(cur)
        conn.rollback()
    return counts


def user_tables(url: str) -> list[str]:
    """The tables of the database (empty: a database ``hearth restore`` may fill without ``--force``)."""
    with contextlib.closing(connect(url, autocommit=True)) as conn, conn.cursor() as cur:
        return tables(cur)


def with_database(url: str, name: str) -> str:
    from ops.devservices import database_url

    return database_url(url, name)


@contextlib.contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new empty database on the server of ``url``, dropped afterwards; yields its URL."""
    name = f"hearth_verify_{uuid.uuid4().hex[:12]}"
    admin = with_database(url, "postgres")
    with contextlib.closing(connect(admin, autocommit=True)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(url, name)
    finally:
        with contextlib.closing(connect(admin, autocommit=True)) as conn, conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
