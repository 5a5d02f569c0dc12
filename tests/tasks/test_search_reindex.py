"""Keeping the search index in step: coalesced per-listing reindexes and full rebuilds under edits."""

from __future__ import annotations

import datetime
import threading

import psycopg2
import structlog

from models.db import connect_args, db
from models.jobs import Job
from models.properties import Property
from models.search import queue as search_queue
from models.search.index import LIVE_TABLE, read_state
from models.search.rebuild import SearchRebuild
from tasks.base import submitting_jobs
from tasks.search import rebuild_index, reindex_property, requeue_stale_reindexes
from tests.search_listings import make_listing, make_owner, update_listing


def indexed(listing) -> dict | None:
    row = db.execute_sql(
        f"SELECT list_price, standard_status, version FROM {LIVE_TABLE} WHERE id = %s",  # noqa: S608 - a constant table name
        (str(listing.id),),
    ).fetchone()
    return None if row is None else {"list_price": row[0], "standard_status": row[1], "version": row[2]}


def index_matches_listings() -> None:
    """The live index holds exactly the listed properties, each at its current version and price."""
    expected = {
        (str(p.id), p.version, p.list_price)
        for p in Property.select().where(
            Property.standard_status.in_(("ComingSoon", "Active", "ActiveUnderContract", "Pending", "Closed"))
        )
    }
    actual = {
        (str(row[0]), row[1], row[2])
        for row in db.execute_sql(f"SELECT id, version, list_price FROM {LIVE_TABLE}").fetchall()  # noqa: S608 - a constant table name
    }
    assert actual == expected


def test_changes_coalesce_into_one_queued_job_per_listing(runtime, queue):
    listing = make_listing()
    first = update_listing(listing, list_price=1_000_000)
    assert first is not None and first.queue == "search" and first.kind == "search.reindex_property"
    assert update_listing(listing, list_price=2_000_000) is None  # the queued job will read the latest row
    other = update_listing(make_listing(), list_price=3_000_000)
    assert other is not None and other.id != first.id
    queue.submit(first)
    queue.submit(other)
    assert queue.run_pending() == 2
    assert indexed(listing)["list_price"] == 2_000_000
    # Once the job has finished, the next change makes a new one.
    assert update_listing(listing, list_price=4_000_000) is not None


def test_the_mark_writes_the_reindex_job_submitted_on_commit_with_the_request_that_caused_it(runtime, queue):
    listing = make_listing()
    with structlog.contextvars.bound_contextvars(request_id="req-mark-1"), submitting_jobs():
        with db.atomic():
            job = search_queue.mark_dirty(listing.id)
            assert job is not None and search_queue.mark_dirty(listing.id) is None  # one job per listing
            assert queue.submitted == []  # not before the commit
        assert queue.submitted == [str(job.id)]
    row = Job.get_by_id(job.id)
    assert (row.kind, row.queue, row.status, row.max_attempts) == ("search.reindex_property", "search", "queued", 5)
    assert (row.input, row.dedupe_key) == ({"property_id": str(listing.id)}, f"search:{listing.id}")
    assert row.request_id == "req-mark-1"
    assert search_queue.pending_seq(listing.id) > 0
    # A later change while that job is queued adds no job and still moves the listing's seq on.
    seq = search_queue.pending_seq(listing.id)
    assert search_queue.mark_dirty(listing.id) is None and search_queue.pending_seq(listing.id) > seq


def test_a_change_while_the_job_runs_is_indexed_before_the_job_lets_go(runtime, queue):
    listing = make_listing()
    job = update_listing(listing, list_price=1_000_000)
    assert Job.claim_by_id(job.id, 60) is not None  # a worker is running it
    seen = search_queue.pending_seq(listing.id)  # ...and has read the latest change
    # Another change commits now; the running job must still pick it up.
    assert update_listing(listing, list_price=2_000_000) is None
    assert search_queue.reindex_step(listing.id, job.id, seen=seen) is False  # not clean: go round again
    assert Job.get_by_id(job.id).dedupe_key is not None  # still the listing's job: no new one is needed
    assert search_queue.reindex_step(listing.id, job.id) is True
    assert indexed(listing)["list_price"] == 2_000_000
    assert Job.get_by_id(job.id).dedupe_key is None  # released: the next change makes a new job
    assert update_listing(listing, list_price=3_000_000) is not None


def test_the_reindex_task_loops_until_clean_and_a_second_delivery_does_nothing(runtime, queue):
    listing = make_listing()
    job = update_listing(listing, standard_status="Withdrawn")
    reindex_property(str(job.id))
    finished = Job.get_by_id(job.id)
    assert (finished.status, finished.result["rounds"]) == ("succeeded", 1)
    assert indexed(listing) is None  # off the market: out of the index
    version = runtime.redis.get(f"{runtime.settings.redis_prefix}search:data_version")
    reindex_property(str(job.id))  # redelivered: nothing to claim
    assert Job.get_by_id(job.id).attempts == 1
    assert runtime.redis.get(f"{runtime.settings.redis_prefix}search:data_version") == version


def test_listings_left_dirty_without_a_job_get_one_from_the_sweep(runtime, queue):
    listing = make_listing()
    job = update_listing(listing, list_price=5_000_000)
    Job.update(status="failed", finished_at=datetime.datetime.now(datetime.UTC)).where(Job.id == job.id).execute()
    db.execute_sql(
        "UPDATE search_dirty SET dirty_since = now() - interval '1 hour' WHERE property_id = %s", (str(listing.id),)
    )
    assert requeue_stale_reindexes() == {"requeued": 1, "submitted": 1}
    assert requeue_stale_reindexes() == {"requeued": 0, "submitted": 0}  # the new job is active
    assert queue.run_pending() == 1
    assert indexed(listing)["list_price"] == 5_000_000
    assert search_queue.lag()["dirty_listings"] == 0


def _edit(listing, queue, *, run: bool, **changes):
    job = update_listing(listing, **changes)
    if job is not None:
        queue.submit(job)
    if run:
        queue.run_pending()


def test_a_full_rebuild_under_concurrent_edits_loses_no_edit(runtime, queue):
    owner = make_owner()
    listings = [make_listing(owner, list_price=(i + 1) * 1_000_000) for i in range(12)]
    generation = read_state()["generation"]
    rebuild = SearchRebuild(pages_per_chunk=1)

    rebuild.start()
    _edit(listings[0], queue, run=True, list_price=100)  # reindexed after the build began
    calls = []

    def while_loading(done, total):  # between two chunks' commits
        if not calls:
            for number, run in ((1, True), (2, False), (3, True)):
                _edit(listings[number], queue, run=run, list_price=200 + number)
        calls.append(done)

    rebuild.load(progress=while_loading)
    assert calls
    new = make_listing(owner, index=False, list_price=7)  # created during the build
    _edit(new, queue, run=True, list_price=8)
    rebuild.build_indexes()
    _edit(listings[4], queue, run=False, standard_status="Withdrawn")  # still dirty at catch-up
    rebuild.catch_up()
    _edit(listings[5], queue, run=True, list_price=500)  # reindexed between catch-up and swap
    _edit(listings[6], queue, run=False, list_price=600)  # dirty at the swap
    result = rebuild.swap()

    assert result["generation"] == generation + 1 and read_state()["building_table"] is None
    assert indexed(listings[4]) is None and indexed(listings[6])["list_price"] == 600
    assert indexed(listings[2])["list_price"] == 202 and indexed(new)["list_price"] == 8
    index_matches_listings()
    queue.run_pending()  # the jobs still queued write the new generation too
    index_matches_listings()


def test_a_failed_rebuild_leaves_the_live_index_alone(runtime, queue):
    listing = make_listing()
    rebuild = SearchRebuild()
    table = rebuild.start()
    rebuild.abandon()
    assert read_state()["building_table"] is None
    assert db.execute_sql("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None
    assert indexed(listing) is not None
    # A later rebuild also clears what a crashed one left behind.
    crashed = SearchRebuild().start()
    SearchRebuild().start()
    assert db.execute_sql("SELECT to_regclass(%s)", (crashed,)).fetchone()[0] is None


def test_the_rebuild_task_reports_progress_and_bumps_the_cached_generation(runtime, queue):
    make_listing()
    job = Job.create(kind="search.rebuild_index", queue="search", owner=make_owner(role="admin").id, input={})
    rebuild_index(str(job.id))
    done = Job.get_by_id(job.id)
    assert done.status == "succeeded", done.error
    assert done.result["rows"] == 1 and done.result["generation"] == read_state()["generation"]
    cached = runtime.redis.get(f"{runtime.settings.redis_prefix}search:generation")
    assert int(cached) == done.result["generation"]


def test_the_swap_gives_way_to_a_long_search_and_tries_again(runtime, queue, database):
    """A search holding the live table when the swap comes: the swap times out, waits, and succeeds."""
    make_listing()
    rebuild = SearchRebuild(lock_timeout="200ms")
    rebuild.start()
    rebuild.load()
    rebuild.build_indexes()
    rebuild.catch_up()
    reader = psycopg2.connect(**{("dbname" if k == "database" else k): v for k, v in connect_args(database).items()})
    reading = reader.cursor()
    reading.execute(f"LOCK TABLE {LIVE_TABLE} IN ACCESS SHARE MODE")  # what a running search holds
    release = threading.Timer(0.5, reader.rollback)
    release.start()
    try:
        result = rebuild.swap()
    finally:
        release.join()
        reader.close()
    assert result["rows"] == 1 and read_state()["building_table"] is None


def test_a_listing_that_keeps_changing_is_handed_to_a_fresh_job(runtime, queue):
    listing = make_listing()
    job = update_listing(listing, list_price=1_000_000)
    Job.claim_by_id(job.id, 60)
    follow_up = search_queue.hand_over(listing.id, job.id)
    assert follow_up is not None and follow_up.id != job.id
    assert Job.get_by_id(job.id).dedupe_key is None
    assert update_listing(listing, list_price=2_000_000) is None  # the fresh job is queued: it will read this
    queue.submit(follow_up)
    assert queue.run_pending() == 1
    assert indexed(listing)["list_price"] == 2_000_000
