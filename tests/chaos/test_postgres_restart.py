"""PostgreSQL (a private cluster) restarted under load: workers reconnect by themselves, no job is lost,
no once-only effect is repeated."""

from __future__ import annotations

import time

import pytest

from models.jobs import Job, JobEffect
from tests.chaos.conftest import Sweeper, wait_all
from tests.factories import make_user
from tests.integration.processes import start_worker
from tests.tasks.live import LiveBroker

pytestmark = pytest.mark.integration


def test_a_postgres_restart_under_load_loses_no_job(live_env, private_postgres, private_db, logs, procs):
    env = {**live_env, "DATABASE_URL": private_postgres.url, "JOB_LEASE_SECONDS": "2", "JOB_REQUEUE_AFTER": "1"}
    worker = start_worker(env, logs, queues="default,maintenance", concurrency=2)
    procs.append(worker)
    user = make_user()
    jobs = [
        Job.create(
            kind="jobs.selftest", queue="default", owner=user.id, input={"steps": 4, "step_ms": 150}, max_attempts=10
        )
        for _ in range(16)
    ]
    private_db.close_all()
    broker = LiveBroker(env)
    for job in jobs:
        broker.submit(job)
    broker.close()

    time.sleep(1.0)
    restart_started = time.monotonic()
    private_postgres.restart()
    restarted_in = time.monotonic() - restart_started
    up_at = time.monotonic()
    ids = [job.id for job in jobs]
    sweeper = Sweeper(env)

    def done() -> bool:
        try:
            return Job.select().where(Job.id.in_(ids) & (Job.status == "succeeded")).count() == len(ids)
        except Exception:  # noqa: BLE001 - the test's own pooled connection died with the restart
            private_db.close_all()
            return False

    wait_all(done, sweeper, timeout=60, what="every job to succeed after the restart")
    sweeper.close()
    recovered = time.monotonic() - up_at
    effects = JobEffect.select().where(JobEffect.job.in_(ids)).count()
    reruns = sum(job.attempts - 1 for job in Job.select().where(Job.id.in_(ids)))
    print(
        f"\nchaos postgres: restart took {restarted_in:.1f} s, {len(ids)} jobs, lost 0, once-only probes {effects} "
        f"for {len(ids)} jobs, jobs run again {reruns}, all done {recovered:.1f} s after it was back"
    )
    assert effects == len(ids)
    assert worker.alive(), worker.output()[-3000:]
