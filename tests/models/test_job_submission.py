"""Jobs reach the broker after the transaction that created them commits, never before and never on a rollback.

Most tests run in the test's own transaction, so the scope begins one level
down and a ``db.atomic()`` block is a savepoint, as for a resource under test.
The last ones run on a thread of their own, where the block is a real
transaction, and check the row is visible to another connection when the job
is submitted.
"""

from __future__ import annotations

import logging
import threading

import psycopg2
import pytest

from models.base import utcnow
from models.db import connect_args, db, open_blocks
from models.job_submission import current_submission, jobs_submitted_after_commit
from models.jobs import Job
from models.notifications import notify
from tests.factories import make_user


class Broker:
    """Records what is submitted; ``down`` makes it refuse like an unreachable broker."""

    def __init__(self, *, down: bool = False, raises: bool = False):
        self.down, self.raises = down, raises
        self.submitted: list[str] = []
        self.events: list[tuple[str, str]] = []

    def submit(self, job) -> bool:
        if self.raises:
            raise ConnectionError("the broker hung up")
        if self.down:
            return False
        self.submitted.append(str(job.id))
        self.events.append(("submitted", str(job.id)))
        return True

    def announce(self, job) -> None:
        self.events.append(("announced", str(job.id)))


class Boom(Exception):
    pass


def _job(**fields) -> Job:
    return Job.create(
        kind=fields.pop("kind", "accounts.send_password_reset"),
        queue="notify",
        input={"email": "a@example.com"},
        **fields,
    )


def test_a_job_is_submitted_when_its_block_commits_not_before(database):
    broker = Broker()
    with jobs_submitted_after_commit(broker.submit) as submission:
        with db.atomic():
            job = _job()
            assert broker.submitted == []  # its row is not committed yet
        assert broker.submitted == [str(job.id)]
    assert submission.submitted == [job] and submission.left_queued == []


def test_a_rolled_back_job_is_never_submitted(database):
    broker = Broker()
    written: list[Job] = []

    def write_a_job_then_fail():
        with db.atomic():
            written.append(_job())
            raise Boom()

    with jobs_submitted_after_commit(broker.submit), pytest.raises(Boom):
        write_a_job_then_fail()
    assert broker.submitted == []
    assert Job.get_or_none(Job.id == written[0].id) is None


def test_a_nested_block_that_rolls_back_drops_only_its_own_jobs(database):
    broker = Broker()
    with jobs_submitted_after_commit(broker.submit):
        with db.atomic():
            kept = _job()
            try:
                with db.atomic():
                    dropped = _job()
                    raise Boom()
            except Boom:
                pass
            with db.atomic():
                inner_kept = _job()
            assert broker.submitted == []  # released into the outer block: still not committed
        assert broker.submitted == [str(kept.id), str(inner_kept.id)]
    assert Job.get_or_none(Job.id == dropped.id) is None


def test_an_outer_rollback_drops_the_jobs_of_blocks_released_inside_it(database):
    broker = Broker()

    def release_a_job_then_fail():
        with db.atomic():
            with db.atomic():
                _job()
            raise Boom()

    with jobs_submitted_after_commit(broker.submit), pytest.raises(Boom):
        release_a_job_then_fail()
    assert broker.submitted == []


def test_a_job_created_with_no_block_open_is_submitted_at_once(database):
    broker = Broker()
    with jobs_submitted_after_commit(broker.submit):
        job = _job()  # a single statement: committed as it ran (here: as visible as the test lets it be)
        assert broker.submitted == [str(job.id)]


def test_a_job_created_outside_any_scope_stays_queued_for_the_sweep(database, caplog):
    assert current_submission() is None
    with caplog.at_level(logging.INFO, logger="hearth.jobs"), db.atomic():
        job = _job()
    assert Job.get_by_id(job.id).status == "queued"
    assert any(record.job_id == str(job.id) and "sweep" in record.getMessage() for record in caplog.records)
    # What the beat sweep takes once the job should have started.
    Job.update(created_at=utcnow().replace(year=2000)).where(Job.id == job.id).execute()
    assert job.id in {stale.id for stale in Job.claim_stale(utcnow(), older_than=60)}


@pytest.mark.parametrize("broker", [Broker(down=True), Broker(raises=True)], ids=["refused", "raised"])
def test_a_failed_submission_leaves_the_job_queued_for_the_sweep(database, broker):
    with jobs_submitted_after_commit(broker.submit) as submission:
        with db.atomic():
            job = _job()
        after = _job()  # the failure stopped nothing: the next job is handed over too
    assert submission.submitted == [] and submission.left_queued == [job, after]
    assert Job.get_by_id(job.id).status == "queued"
    Job.update(created_at=utcnow().replace(year=2000)).where(Job.id.in_([job.id, after.id])).execute()
    assert {job.id, after.id} <= {stale.id for stale in Job.claim_stale(utcnow(), older_than=60)}


def test_every_way_of_creating_a_job_registers_it(database):
    broker = Broker()
    user = make_user()
    with jobs_submitted_after_commit(broker.submit), db.atomic():
        first, created = Job.create_or_get_active(
            dedupe_key="export:x", kind="exports.build_export", queue="exports", owner=user.id, input={}
        )
        again, created_again = Job.create_or_get_active(
            dedupe_key="export:x", kind="exports.build_export", queue="exports", owner=user.id, input={}
        )
        saved = Job(kind="jobs.selftest", owner=user.id, input={})
        saved.save(force_insert=True)
        fan_out = notify(user.id, "message.received", title="Hello", body="Is it still available?")
    assert (created, created_again, again.id) == (True, False, first.id)
    assert broker.submitted == [str(first.id), str(saved.id), str(fan_out.id)]


def test_an_update_of_a_job_is_not_a_new_submission(database):
    broker = Broker()
    job = _job()
    with jobs_submitted_after_commit(broker.submit):
        job.progress_message = "half way"
        job.save()
    assert broker.submitted == []


def test_jobs_their_owner_follows_are_announced_just_before_they_are_submitted(database):
    broker = Broker()
    user = make_user()
    with jobs_submitted_after_commit(broker.submit, announce=broker.announce), db.atomic():
        followed = _job(kind="jobs.selftest", owner=user.id)
        quiet = _job(kind="accounts.send_verification_email", owner=user.id)
    assert broker.events == [
        ("announced", str(followed.id)),
        ("submitted", str(followed.id)),
        ("submitted", str(quiet.id)),
    ]


def test_the_innermost_scope_takes_the_jobs_created_in_it(database):
    outer, inner = Broker(), Broker()
    with jobs_submitted_after_commit(outer.submit):
        with jobs_submitted_after_commit(inner.submit), db.atomic():
            mine = _job()
        with db.atomic():
            theirs = _job()
    assert (outer.submitted, inner.submitted) == ([str(theirs.id)], [str(mine.id)])
    assert current_submission() is None


# --- a real transaction: the production path ------------------------------------------------------------


def _visible_elsewhere(database_url: str, job_id) -> bool:
    """Whether another connection sees the job's row (that is: it was committed)."""
    args = connect_args(database_url)
    conn = psycopg2.connect(**{("dbname" if k == "database" else k): v for k, v in args.items()})
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM jobs WHERE id = %s", (str(job_id),))
            return cur.fetchone() is not None
    finally:
        conn.close()


def _on_a_thread_of_its_own(work):
    """Run ``work()`` on a thread with its own connection and no test transaction; re-raise its failure."""
    outcome = {}

    def run():
        try:
            with db.connection_context():
                outcome["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_in_a_real_transaction_the_row_is_committed_when_the_job_is_submitted(database):
    seen = []

    def submit(job) -> bool:
        seen.append((str(job.id), _visible_elsewhere(database, job.id)))
        return True

    def work():
        assert open_blocks() == 0
        with jobs_submitted_after_commit(submit):
            with db.atomic():
                with db.atomic():
                    job = _job()
                assert seen == []
            try:
                with db.atomic():
                    _job()
                    raise Boom()
            except Boom:
                pass
        return job

    job = _on_a_thread_of_its_own(work)
    try:
        assert seen == [(str(job.id), True)]
    finally:
        _on_a_thread_of_its_own(lambda: Job.delete().where(Job.id == job.id).execute())
