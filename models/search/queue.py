"""Which listings the search index must catch up with, and the coalesced reindex jobs.

Every change to a listing calls ``mark_dirty(property_id)`` inside the
transaction that changes it; the returned job is submitted when that
transaction commits. ``search_dirty`` keeps one row per listing:

* ``seq``: drawn from ``search_change_seq`` by every change (``mark_dirty``);
* ``indexed_seq``: the latest change the live index reflects;
* ``done_seq``: drawn when a reindex last wrote the listing's row (a full
  rebuild re-copies listings reindexed while it built; ``models.search.index``).

A listing is dirty while ``seq > indexed_seq``. Jobs coalesce per listing
(``dedupe_key``): while a reindex is queued, a change adds no job (the job will
read the latest row). While one is running, a change adds no job either, and
the running job still sees it, because of how a run ends (``reindex_step``):

1. read ``seq`` (the latest committed change), then index the listing from
   its current row, under a per-listing lock;
2. in the same transaction, set ``indexed_seq`` with an upsert of the dirty
   row. That upsert waits for any listing transaction that marked the row and
   has not committed, and then sees its newer ``seq``: the run goes round again;
3. only when the row is clean does the run give up its ``dedupe_key``, still in
   that transaction. A change that marks the row after this commits finds no
   active job and creates a new one.

So the last edit of a listing is never left unindexed while no job exists for
it; ``requeue_stale`` (beat) covers jobs that failed for good.

Listings that a bulk import just created (``mark_new_many``) share one job of kind
``search.reindex_properties`` instead of a job each: the job holds no listing's ``dedupe_key``,
so a change made to one of them before that job runs still adds its own job (above), and the
batch job needs no hand-over. ``search_dirty.batch_job_id`` names the batch job, which
``requeue_stale`` counts as an active job of the listing while it is queued or running.
"""

from __future__ import annotations

import datetime
import json

from models.base import utcnow
from models.db import db
from models.job_submission import submit_after_commit
from models.jobs import ACTIVE, DEDUPE_TURN, Job, current_request_id, new_job_id
from models.search.index import LOCK_LISTING, hold_swap_shared, index_listings, lock_listing

REINDEX_KIND = "search.reindex_property"
REINDEX_BATCH_KIND = "search.reindex_properties"
REBUILD_KIND = "search.rebuild_index"
REBUILD_DEDUPE_KEY = "search:rebuild"
QUEUE = "search"
REINDEX_ATTEMPTS = 5

_SETTLE = """
INSERT INTO search_dirty AS d (property_id, seq, indexed_seq, done_seq)
VALUES (%s, 0, %s, nextval('search_change_seq'))
ON CONFLICT (property_id) DO UPDATE SET
    indexed_seq = GREATEST(d.indexed_seq, EXCLUDED.indexed_seq),
    done_seq = EXCLUDED.done_seq,
    dirty_since = CASE WHEN d.seq > GREATEST(d.indexed_seq, EXCLUDED.indexed_seq) THEN d.dirty_since END
RETURNING seq <= indexed_seq
"""


def dedupe_key(property_id) -> str:
    return f"search:{property_id}"


def _reindex_job(property_id) -> tuple[Job, bool]:
    return Job.create_or_get_active(
        dedupe_key=dedupe_key(property_id),
        kind=REINDEX_KIND,
        queue=QUEUE,
        input={"property_id": str(property_id)},
        max_attempts=REINDEX_ATTEMPTS,
    )


def mark_dirty(property_id) -> Job | None:
    """Record that ``property_id`` changed; the reindex job it created (submitted on commit), or None.

    Call it inside the transaction that changes the listing, after the change.
    None means a reindex of this listing is already queued or running; that
    job will index this change too. Two round trips, with no savepoint and no
    Job read (an escrow's release pays them): ``mark_dirty_many`` of one listing.
    """
    jobs = mark_dirty_many([property_id])
    return jobs[0] if jobs else None


# The marks (of one listing or many), then each listing's turn, taken in key order (two writers
# marking overlapping sets wait for each other instead of deadlocking); then the jobs, in one statement.
# Its check for an active job is a subquery per listing, an index probe: as NOT EXISTS the planner may
# hash every active job instead (a bulk import queues one per listing), a cost that grows with them.
_MARK_MANY = f"""
WITH marked AS (
    INSERT INTO search_dirty AS d (property_id, seq, dirty_since, marked_at)
    SELECT p, nextval('search_change_seq'), now(), now() FROM unnest(%s::uuid[]) AS p
    ON CONFLICT (property_id) DO UPDATE SET
        seq = EXCLUDED.seq,
        marked_at = now(),
        dirty_since = CASE WHEN d.seq > d.indexed_seq THEN d.dirty_since ELSE now() END
    RETURNING property_id
)
SELECT {DEDUPE_TURN % "t.key"}
FROM (SELECT 'search:' || property_id::text AS key FROM marked ORDER BY 1) AS t
"""  # noqa: S608 - a constant of models.jobs; every value is a %s parameter
_REINDEX_JOBS = """
INSERT INTO jobs (id, kind, queue, status, progress_pct, input, attempts, max_attempts, dedupe_key, request_id,
                  created_at, updated_at)
SELECT j.id, %s, %s, 'queued', 0, j.input, 0, %s, j.key, %s, %s::timestamptz, %s::timestamptz
FROM unnest(%s::uuid[], %s::jsonb[], %s::text[]) AS j (id, input, key)
WHERE (SELECT 1 FROM jobs WHERE dedupe_key = j.key AND status IN ('queued', 'running')) IS NULL
ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running') DO NOTHING
RETURNING *
"""


def mark_dirty_many(property_ids) -> list[Job]:
    """``mark_dirty`` for many listings in three statements: the reindex jobs it created (submitted on commit).

    The same rows and jobs as ``mark_dirty`` called for each listing (a listing given twice counts once).
    """
    ids = sorted(dict.fromkeys(str(property_id) for property_id in property_ids))
    if not ids:
        return []
    if not db.in_transaction():
        with db.atomic():
            return mark_dirty_many(ids)
    db.execute_sql(_MARK_MANY, (ids,))
    now = utcnow()
    keys = [dedupe_key(property_id) for property_id in ids]
    inputs = [json.dumps({"property_id": property_id}) for property_id in ids]
    job_ids = [str(new_job_id()) for _ in ids]
    params = (REINDEX_KIND, QUEUE, REINDEX_ATTEMPTS, current_request_id(), now, now, job_ids, inputs, keys)
    jobs = list(Job.raw(_REINDEX_JOBS, *params))
    for job in jobs:
        submit_after_commit(job)  # inserted by hand: Job.save did not see them
    return jobs


_MARK_NEW = """
INSERT INTO search_dirty AS d (property_id, seq, dirty_since, marked_at, batch_job_id)
SELECT p, nextval('search_change_seq'), now(), now(), %s FROM unnest(%s::uuid[]) AS p
ON CONFLICT (property_id) DO UPDATE SET
    seq = EXCLUDED.seq,
    marked_at = now(),
    dirty_since = CASE WHEN d.seq > d.indexed_seq THEN d.dirty_since ELSE now() END,
    batch_job_id = EXCLUDED.batch_job_id
"""


def mark_new_many(property_ids) -> Job | None:
    """Mark listings created in this transaction, all reindexed by one new job (submitted on commit).

    For new listings only (a bulk import's): no job of theirs can be active yet, so none is looked
    for, and no listing's ``dedupe_key`` is taken (see the module docstring). None when given none.
    """
    ids = sorted(dict.fromkeys(str(property_id) for property_id in property_ids))
    if not ids:
        return None
    if not db.in_transaction():
        with db.atomic():
            return mark_new_many(ids)
    job = Job.create(kind=REINDEX_BATCH_KIND, queue=QUEUE, input={"property_ids": ids}, max_attempts=REINDEX_ATTEMPTS)
    db.execute_sql(_MARK_NEW, (str(job.id), ids))
    return job


# ``_SETTLE`` for many listings, each with the ``seq`` read before it was indexed.
_SETTLE_MANY = """
INSERT INTO search_dirty AS d (property_id, seq, indexed_seq, done_seq)
SELECT p, 0, s, nextval('search_change_seq') FROM unnest(%s::uuid[], %s::bigint[]) AS t (p, s) ORDER BY p
ON CONFLICT (property_id) DO UPDATE SET
    indexed_seq = GREATEST(d.indexed_seq, EXCLUDED.indexed_seq),
    done_seq = EXCLUDED.done_seq,
    dirty_since = CASE WHEN d.seq > GREATEST(d.indexed_seq, EXCLUDED.indexed_seq) THEN d.dirty_since END
RETURNING seq <= indexed_seq
"""


# ``lock_listing`` of each listing, in one statement; taken in the order of the locks' keys, as two batches
# that overlap take them (their ids' order could differ from their keys' when two ids' hashes collide).
_LOCK_MANY = """
SELECT count(pg_advisory_xact_lock(%s, k))
FROM (SELECT hashtext(p) AS k FROM unnest(%s::text[]) AS p ORDER BY 1 OFFSET 0) AS keys
"""


def reindex_many(property_ids) -> int:
    """``reindex_step`` (without a job's key to give up) for many listings in one transaction; how many are
    still dirty after it (changed meanwhile: each such change queued a job of its own)."""
    ids = sorted(dict.fromkeys(str(property_id) for property_id in property_ids))
    if not ids:
        return 0
    seen = dict(
        db.execute_sql(
            "SELECT property_id::text, seq FROM search_dirty WHERE property_id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
    )
    with db.atomic():
        db.execute_sql(_LOCK_MANY, (LOCK_LISTING, ids))
        hold_swap_shared()
        index_listings(ids)
        rows = db.execute_sql(_SETTLE_MANY, (ids, [seen.get(property_id, 0) for property_id in ids])).fetchall()
    return sum(1 for (clean,) in rows if not clean)


def pending_seq(property_id) -> int:
    row = db.execute_sql("SELECT seq FROM search_dirty WHERE property_id = %s", (str(property_id),)).fetchone()
    return row[0] if row else 0


def reindex_step(property_id, job_id=None, seen: int | None = None) -> bool:
    """Index one listing into the live table once; True when no change is left to index.

    When it returns True and ``job_id`` is given, that job no longer holds the
    listing's ``dedupe_key`` (see the module docstring). ``seen``: the ``seq``
    read before the listing (default: read now).
    """
    if seen is None:
        seen = pending_seq(property_id)
    with db.atomic():
        lock_listing(property_id)
        hold_swap_shared()
        index_listings([property_id])
        clean = db.execute_sql(_SETTLE, (str(property_id), seen)).fetchone()[0]
        if clean and job_id is not None:
            Job.update(dedupe_key=None).where(Job.id == job_id).execute()
    return clean


def hand_over(property_id, job_id) -> Job | None:
    """Give a listing that keeps changing to a fresh job (submitted once this commits)."""
    with db.atomic():
        Job.update(dedupe_key=None).where(Job.id == job_id).execute()
        job, created = _reindex_job(property_id)
    return job if created else None


def queue_rebuild(owner_id=None) -> tuple[Job, bool]:
    """A full rebuild job (one at a time): ``(job, created)``; a created one is submitted on commit."""
    with db.atomic():
        return Job.create_or_get_active(
            dedupe_key=REBUILD_DEDUPE_KEY, kind=REBUILD_KIND, queue=QUEUE, owner=owner_id, input={}, max_attempts=3
        )


def requeue_stale(older_than: float, limit: int = 500) -> list[Job]:
    """Jobs for listings dirty longer than ``older_than`` seconds with no active reindex (a job failed for good)."""
    cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=older_than)
    rows = db.execute_sql(
        "SELECT d.property_id FROM search_dirty d WHERE d.seq > d.indexed_seq AND d.dirty_since < %s "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.dedupe_key = 'search:' || d.property_id::text "
        "AND j.status IN %s) AND NOT EXISTS (SELECT 1 FROM jobs b WHERE b.id = d.batch_job_id AND b.status IN %s) "
        "ORDER BY d.dirty_since LIMIT %s",
        (cutoff, ACTIVE, ACTIVE, limit),
    ).fetchall()
    created = []
    for (property_id,) in rows:
        with db.atomic():
            job, new = _reindex_job(property_id)
        if new:
            created.append(job)
    return created


def lag() -> dict:
    """How far the live index is behind: dirty listings, the oldest one's age, reindex jobs by status."""
    count, oldest, age = db.execute_sql(
        "SELECT count(*), min(dirty_since), EXTRACT(EPOCH FROM now() - min(dirty_since)) "
        "FROM search_dirty WHERE seq > indexed_seq"
    ).fetchone()
    jobs = dict(
        db.execute_sql(
            "SELECT status, count(*) FROM jobs WHERE kind IN (%s, %s) AND status IN %s GROUP BY status",
            (REINDEX_KIND, REINDEX_BATCH_KIND, ACTIVE),
        ).fetchall()
    )
    return {
        "dirty_listings": count,
        "oldest_dirty_since": oldest.isoformat() if oldest else None,
        "oldest_dirty_age_seconds": round(float(age), 3) if age is not None else None,
        "queued_reindex_jobs": jobs.get("queued", 0),
        "running_reindex_jobs": jobs.get("running", 0),
    }


__all__ = [
    "QUEUE",
    "REBUILD_DEDUPE_KEY",
    "REBUILD_KIND",
    "REINDEX_BATCH_KIND",
    "REINDEX_KIND",
    "dedupe_key",
    "hand_over",
    "lag",
    "mark_dirty",
    "mark_dirty_many",
    "mark_new_many",
    "pending_seq",
    "queue_rebuild",
    "reindex_many",
    "reindex_step",
    "requeue_stale",
]
