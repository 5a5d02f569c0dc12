"""Demo data: realistic, deterministic listings in ten real US cities (``hearth demo seed``).

``seed_listings(url_or_connection, n, seed)`` writes ``n`` listings, their
price/status history and a few demo sellers and agents straight through
PostgreSQL ``COPY`` (the ORM would take minutes for a million rows). Row ``i``
depends only on ``(seed, i)``: the same seed gives the same rows, whatever the
batch size or number of worker processes (the rows are made in ``ops/demo_data.py``).
Seeding does not enqueue per-listing reindex jobs: run one full search rebuild afterwards.
"""

from __future__ import annotations

import datetime
import io
import queue
import threading

from ops.demo_data import (
    AGENTS,
    CHUNK,
    COLUMNS,
    DEMO_EMAIL_DOMAIN,
    DEMO_PASSWORD,
    EPOCH,
    HISTORY_COLUMNS,
    SELLERS,
    demo_users,
    generate_chunk,
)


class SeedError(Exception):
    """The seed cannot run as asked (e.g. these listings are already in the database)."""


# --------------------------------------------------------------------------- writing


def _connect(url: str):
    import psycopg2

    from models.db import connect_args

    args = connect_args(url)
    args["dbname"] = args.pop("database")
    return psycopg2.connect(**args)


def _raw_connection(target):
    """A psycopg2 connection from a psycopg2 connection or a peewee database (its current one)."""
    if hasattr(target, "cursor") and hasattr(target, "commit") and not hasattr(target, "execute_sql"):
        return target
    if hasattr(target, "connection"):
        return target.connection()
    raise TypeError("seed_listings needs a database URL, a psycopg2 connection or a peewee database")


def _ensure_users(conn) -> tuple[list[str], list[str]]:
    """Insert the demo sellers and agents unless present; their ids (existing accounts keep theirs)."""
    from models.passwords import hash_password

    sellers, agents = demo_users()
    people = sellers + agents
    with conn.cursor() as cur:
        cur.execute("SELECT email, id FROM users WHERE email = ANY(%s)", ([p[1] for p in people],))
        existing = {email: str(uid) for email, uid in cur.fetchall()}
        missing = [p for p in people if p[1] not in existing]
        if missing:
            password_hash = hash_password(DEMO_PASSWORD)  # one hash for all: these are demo accounts
            created = EPOCH - datetime.timedelta(days=800)
            cur.executemany(
                "INSERT INTO users (id, email, password_hash, full_name, role, email_verified_at, created_at,"
                " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (email) DO NOTHING",
                [
                    (str(uid), email, password_hash, name, role, created, created, created)
                    for uid, email, name, role in missing
                ],
            )
            cur.execute("SELECT email, id FROM users WHERE email = ANY(%s)", ([p[1] for p in people],))
            existing = {email: str(uid) for email, uid in cur.fetchall()}
    return [existing[p[1]] for p in sellers], [existing[p[1]] for p in agents]


def _copy_chunks(conn, seed: int, chunks: list[tuple[int, int]], sellers, agents) -> None:
    """Generate chunks on this thread while a writer thread COPYs the previous one.

    psycopg2 lets go of the GIL while PostgreSQL ingests, so generating (Python)
    and ingesting (the server) overlap: on two cores about twice as fast as
    taking turns, with no second process to spawn.
    """
    listing_sql = f"COPY properties ({', '.join(COLUMNS)}) FROM STDIN"
    history_sql = f"COPY property_history ({', '.join(HISTORY_COLUMNS)}) FROM STDIN"
    pending: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def write() -> None:
        with conn.cursor() as cur:
            while (item := pending.get()) is not None:
                if failure:
                    continue  # drain, so the producer never blocks on a dead writer
                try:
                    cur.copy_expert(listing_sql, io.StringIO("".join(item[0])))
                    cur.copy_expert(history_sql, io.StringIO("".join(item[1])))
                except BaseException as exc:  # noqa: BLE001 - handed to the producer, which raises it
                    failure.append(exc)

    writer = threading.Thread(target=write, name="demo-seed-copy", daemon=True)
    writer.start()
    try:
        for chunk, count in chunks:
            if failure:
                break
            pending.put(generate_chunk(seed, chunk, count, sellers, agents))
    finally:
        pending.put(None)
        writer.join()
    if failure:
        raise failure[0]


def _plan(n: int) -> list[tuple[int, int]]:
    return [(k, min(CHUNK, n - k * CHUNK)) for k in range((n + CHUNK - 1) // CHUNK)]


def _check_not_seeded(conn, seed: int, sellers, agents) -> None:
    first = generate_chunk(seed, 0, 1, sellers, agents)[0][0].split("\t", 1)[0]
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM properties WHERE id = %s", (first,))
        if cur.fetchone():
            raise SeedError(f"the listings of seed {seed} are already in this database; choose another seed")


def seed_listings(database_url_or_conn, n: int, seed: int = 42) -> int:
    """Write ``n`` demo listings (with history, and the demo users) for ``seed``; returns ``n``.

    Given a connection (psycopg2, or a peewee database), everything happens in
    its current transaction and nothing is committed: the caller decides.
    Given a URL, it opens its own connection and commits once at the end, so
    a failed seed leaves nothing behind. ``SeedError`` when the listings of
    this seed are already there.
    """
    if n < 0:
        raise SeedError("the number of listings cannot be negative")
    owned = isinstance(database_url_or_conn, str)
    conn = _connect(database_url_or_conn) if owned else _raw_connection(database_url_or_conn)
    try:
        sellers, agents = _ensure_users(conn)
        if n:
            _check_not_seeded(conn, seed, sellers, agents)
            _copy_chunks(conn, seed, _plan(n), sellers, agents)
        if owned:
            conn.commit()
    finally:
        if owned:
            conn.close()
    return n


# --------------------------------------------------------------------------- the command


def queue_search_rebuild(settings) -> tuple[object, bool, bool]:
    """Queue the search engineer's full rebuild (``search.rebuild_index``), as ``POST /v1/admin/search/reindex``.

    Returns ``(job, created, submitted)``. A rebuild already queued or running
    is reused. When the broker is down the job stays queued for the beat sweep.
    """
    from models.db import db
    from models.job_submission import jobs_submitted_after_commit
    from models.jobs import Job
    from models.search import queue as search_queue
    from services.jobqueue import CeleryJobQueue

    with jobs_submitted_after_commit(CeleryJobQueue.from_settings(settings).submit) as submission, db.atomic():
        job, created = Job.create_or_get_active(
            dedupe_key="search:rebuild",
            kind=search_queue.REBUILD_KIND,
            queue=search_queue.QUEUE,
            input={},
            max_attempts=3,
        )
    return job, created, job in submission.submitted


def seed_command(url: str, settings, n: int, seed: int, out=print) -> int:
    """``hearth demo seed``: seed, then have the search index rebuilt once (never a job per listing)."""
    import time

    started = time.perf_counter()
    seed_listings(url, n, seed)
    took = time.perf_counter() - started
    out(f"seeded {n} listings (seed {seed}) in {took:.1f} s ({n / max(took, 1e-9):,.0f}/s)")
    out(f"demo users: seller01..{SELLERS:02d}, agent01..{AGENTS:02d} @{DEMO_EMAIL_DOMAIN}, password {DEMO_PASSWORD!r}")
    job, created, submitted = queue_search_rebuild(settings)
    state = "queued" if created else "already queued or running"
    out(
        f"search index rebuild {state}: job {job.id} (follow it at /v1/jobs/{job.id})"
        + (
            ""
            if submitted or not created
            else "; the broker is not reachable, so it starts once a worker and beat run (`hearth run`)"
        )
    )
    return n


__all__ = ["SeedError", "queue_search_rebuild", "seed_command", "seed_listings"]
