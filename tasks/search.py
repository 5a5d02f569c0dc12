"""Search index maintenance: per-listing reindex, full rebuild, and the sweep for stuck listings.

* ``reindex_property`` (kind ``search.reindex_property``, one active job per
  listing): brings the listing's row in the live index up to date, again and
  again while the listing keeps changing (``models.search.queue``), then makes
  every cached search page obsolete.
* ``reindex_properties`` (kind ``search.reindex_properties``, one job for the
  listings of an import's chunk, ``models.search.queue.mark_new_many``): the
  same for many listings in one transaction, once; a listing changed meanwhile
  has a job of its own for that change.
* ``rebuild_index`` (kind ``search.rebuild_index``, one at a time): builds a
  new generation of the index and swaps it in (``models.search.rebuild.SearchRebuild``),
  with progress; a failed or cancelled rebuild drops its half-built table and
  leaves the live index as it was.
* ``requeue_stale_reindexes`` (beat): listings left dirty with no active job
  (their job failed for good) get a new one.
"""

from __future__ import annotations

import logging

from models.db import connection
from models.search import queue as search_queue
from models.search.rebuild import SearchRebuild
from tasks.app import app
from tasks.base import JobContext, job_task, submitting_jobs
from tasks.runtime import runtime

log = logging.getLogger("hearth.search")
# Rounds one job spends on a listing that keeps changing before a fresh job takes over.
MAX_ROUNDS = 5
STALE_AFTER_SECONDS = 300


@job_task()
def reindex_property(ctx: JobContext) -> dict:
    property_id = ctx.input["property_id"]
    cache = runtime().search_cache
    for round_ in range(1, MAX_ROUNDS + 1):
        clean = search_queue.reindex_step(property_id, ctx.job.id)
        cache.listing_changed()
        if clean:
            return {"property_id": property_id, "rounds": round_}
    follow_up = search_queue.hand_over(property_id, ctx.job.id)  # submitted once it committed
    return {
        "property_id": property_id,
        "rounds": MAX_ROUNDS,
        "handed_over_to": str(follow_up.id) if follow_up is not None else None,
    }


@job_task()
def reindex_properties(ctx: JobContext) -> dict:
    property_ids = ctx.input["property_ids"]
    still_dirty = search_queue.reindex_many(property_ids)
    runtime().search_cache.listing_changed()
    return {"listings": len(property_ids), "still_dirty": still_dirty}


# ~40 s for 1,000,000 listings here; the limits leave room for forty times that, and stay
# below the broker's visibility timeout (celeryconfig) like every other limit.
@job_task(lease_seconds=120, soft_time_limit=1800, time_limit=1900)
def rebuild_index(ctx: JobContext) -> dict:
    settings = runtime().settings
    rebuild = SearchRebuild(
        job_id=ctx.job.id,
        log=log.info,
        sessions=settings.search_rebuild_sessions,
        maintenance_work_mem=settings.search_rebuild_maintenance_work_mem,
    )
    try:
        rebuild.start()
        ctx.progress(2, "Copying listings")
        rebuild.load(
            progress=lambda done, total: ctx.progress(
                2 + 58 * done // max(1, total), f"Copied {done} of {total} pages of listings"
            )
        )
        ctx.progress(60, "Building indexes")
        rebuild.build_indexes(
            progress=lambda done, total: ctx.progress(
                60 + 30 * done // max(1, total), f"Built {done} of {total} indexes"
            )
        )
        caught_up = rebuild.catch_up()
        ctx.progress(95, f"Caught up with {caught_up} listings changed meanwhile; swapping")
        result = rebuild.swap()
    except BaseException:
        try:
            rebuild.abandon()
        except Exception:
            log.warning("could not drop a half-built search index", exc_info=True)
        raise
    runtime().search_cache.generation_changed(result["generation"])
    result["caught_up"] = caught_up
    return result


@app.task(name="tasks.search.requeue_stale_reindexes", acks_late=True, ignore_result=True)
def requeue_stale_reindexes() -> dict:
    with submitting_jobs() as submission, connection():
        jobs = search_queue.requeue_stale(STALE_AFTER_SECONDS)
    submitted = len(submission.submitted)
    if jobs:
        log.info("stale search reindexes requeued", extra={"jobs": len(jobs), "submitted": submitted})
    return {"requeued": len(jobs), "submitted": submitted}
