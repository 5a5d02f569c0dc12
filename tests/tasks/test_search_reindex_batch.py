"""New listings of a bulk import share one reindex job; no listing is left unindexed, none gets a second job."""

from __future__ import annotations

import datetime

from models.db import db
from models.jobs import Job
from models.search import queue as search_queue
from models.search.index import LOCK_LISTING
from tasks.base import submitting_jobs
from tasks.search import reindex_properties, requeue_stale_reindexes
from tests.search_listings import make_listing, make_owner, update_listing
from tests.tasks.test_search_reindex import index_matches_listings, indexed


def _new_listings(count: int) -> list:
    owner = make_owner()
    return [make_listing(owner, index=False, list_price=(i + 1) * 1_000_000) for i in range(count)]


def _age(listings) -> None:
    db.execute_sql(
        "UPDATE search_dirty SET dirty_since = now() - interval '1 hour' WHERE property_id = ANY(%s::uuid[])",
        ([str(listing.id) for listing in listings],),
    )


def test_one_job_marks_and_indexes_the_new_listings_of_a_chunk(runtime, queue):
    listings = _new_listings(3)
    with submitting_jobs(), db.atomic():
        job = search_queue.mark_new_many([listing.id for listing in reversed(listings)])
        assert queue.submitted == []  # not before the commit
    assert queue.submitted == [str(job.id)]
    row = Job.get_by_id(job.id)
    assert (row.kind, row.queue, row.status, row.dedupe_key) == ("search.reindex_properties", "search", "queued", None)
    assert row.input == {"property_ids": sorted(str(listing.id) for listing in listings)}
    assert Job.select().where(Job.kind == search_queue.REINDEX_KIND).count() == 0  # no job per listing
    assert all(search_queue.pending_seq(listing.id) > 0 for listing in listings)
    assert search_queue.lag()["dirty_listings"] == 3 and search_queue.lag()["queued_reindex_jobs"] == 1
    assert search_queue.mark_new_many([]) is None

    reindex_properties(str(job.id))
    finished = Job.get_by_id(job.id)
    assert (finished.status, finished.result) == ("succeeded", {"listings": 3, "still_dirty": 0})
    assert [indexed(listing)["list_price"] for listing in listings] == [1_000_000, 2_000_000, 3_000_000]
    index_matches_listings()
    assert search_queue.lag()["dirty_listings"] == 0


def test_a_change_before_the_batch_job_runs_gets_its_own_job_and_both_index_it(runtime, queue):
    listings = _new_listings(2)
    with db.atomic():
        batch = search_queue.mark_new_many([listing.id for listing in listings])
    # The batch job holds no listing's key: an edit adds the listing's own job (a second edit coalesces into it).
    own = update_listing(listings[0], list_price=9_000_000)
    assert own is not None and own.dedupe_key == f"search:{listings[0].id}"
    assert update_listing(listings[0], list_price=7_000_000) is None
    reindex_properties(str(batch.id))
    assert [indexed(listing)["list_price"] for listing in listings] == [7_000_000, 2_000_000]
    queue.submit(own)
    assert queue.run_pending() == 1
    assert indexed(listings[0])["list_price"] == 7_000_000
    index_matches_listings()
    assert search_queue.lag()["dirty_listings"] == 0
    assert update_listing(listings[1], list_price=6_000_000) is not None  # the batch job is over: a job of its own


def test_the_sweep_leaves_listings_of_an_active_batch_job_alone_and_takes_them_after_it_failed(runtime, queue):
    listings = _new_listings(2)
    with db.atomic():
        batch = search_queue.mark_new_many([listing.id for listing in listings])
    _age(listings)
    assert requeue_stale_reindexes() == {"requeued": 0, "submitted": 0}  # the batch job is queued: no second job
    Job.update(status="running").where(Job.id == batch.id).execute()
    assert requeue_stale_reindexes() == {"requeued": 0, "submitted": 0}
    Job.update(status="failed", finished_at=datetime.datetime.now(datetime.UTC)).where(Job.id == batch.id).execute()
    assert requeue_stale_reindexes() == {"requeued": 2, "submitted": 2}
    assert queue.run_pending() == 2
    assert [indexed(listing)["list_price"] for listing in listings] == [1_000_000, 2_000_000]
    assert search_queue.lag()["dirty_listings"] == 0


def test_the_batch_takes_each_listing_s_lock_as_a_single_reindex_does(runtime, queue):
    listings = _new_listings(3)
    with db.atomic():
        search_queue.mark_new_many([listing.id for listing in listings])
    assert search_queue.reindex_many([listing.id for listing in listings]) == 0
    # The test's transaction is still open: the transaction-scoped locks the batch took are held.
    held = {
        row[0]
        for row in db.execute_sql(
            "SELECT objid::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = %s",
            (LOCK_LISTING,),
        ).fetchall()
    }
    keys = db.execute_sql(
        "SELECT hashtext(p) FROM unnest(%s::text[]) AS p", ([str(listing.id) for listing in listings],)
    ).fetchall()
    assert {key for (key,) in keys} <= held
    assert [indexed(listing)["list_price"] for listing in listings] == [1_000_000, 2_000_000, 3_000_000]
