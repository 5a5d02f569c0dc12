"""Workers killed with SIGKILL, again and again, over jobs with side effects: no job lost, no effect twice.

Once-only effects (an email through SendGrid, recorded by ``JobContext.once``)
reach the provider at most once per job, and exactly once unless a run died
in the middle of the call, which the job then records as uncertain; idempotent at-least-once effects (an
export archive, written to a key derived from the job) are whole and single
whatever the run that wrote them.
"""

from __future__ import annotations

import collections
import io
import time
import zipfile

import pytest

from models.jobs import Job, JobEffect
from tasks.exports import archive_key
from tests.chaos.conftest import Sweeper, wait_all
from tests.factories import make_user
from tests.integration.processes import start_worker
from tests.providers import providers  # noqa: F401
from tests.tasks.live import LiveBroker

pytestmark = pytest.mark.integration
QUEUES = "notify,default,exports,maintenance"
KILLS = 6


def test_repeated_kill9_of_workers_loses_no_job_and_repeats_no_once_only_effect(
    live_env, live_db, logs, procs, providers
):
    env = {**live_env, **providers.env(), "JOB_LEASE_SECONDS": "2", "JOB_REQUEUE_AFTER": "1"}
    workers = [start_worker(env, logs, queues=QUEUES, concurrency=2, name=f"w{i}") for i in range(2)]
    procs.extend(workers)
    users = [make_user(full_name=f"Chaos {i}", verified=False) for i in range(16)]
    jobs = []
    for user in users:
        jobs.append(
            Job.create(
                kind="accounts.send_verification_email", queue="notify", owner=user.id, input={"user_id": str(user.id)}
            )
        )
    for user in users[:8]:
        jobs.append(
            Job.create(
                kind="exports.build_export",
                queue="exports",
                owner=user.id,
                input={"user_id": str(user.id)},
                max_attempts=10,
            )
        )
    for user in users[8:]:
        jobs.append(
            Job.create(
                kind="jobs.selftest",
                queue="default",
                owner=user.id,
                input={"steps": 6, "step_ms": 150},
                max_attempts=10,
            )
        )
    broker = LiveBroker(env)
    for job in jobs:
        broker.submit(job)
    broker.close()

    sweeper = Sweeper(env)
    started = time.monotonic()
    for kill in range(KILLS):
        time.sleep(1.0)
        sweeper.tick()
        victim = workers[kill % 2]
        victim.kill9()
        workers[kill % 2] = start_worker(env, logs, queues=QUEUES, concurrency=2, name=f"w{kill % 2}-{kill}")
        procs.append(workers[kill % 2])
    ids = [job.id for job in jobs]
    wait_all(
        lambda: Job.select().where(Job.id.in_(ids) & (Job.status == "succeeded")).count() == len(ids),
        sweeper,
        timeout=90,
        what="every job to succeed after the kills",
    )
    sweeper.close()
    recovered = time.monotonic() - started

    done = list(Job.select().where(Job.id.in_(ids)))
    lost = [job for job in done if job.status != "succeeded"]
    sent = collections.Counter(address for email in providers.emails() for address in email.to)
    duplicates = sum(count - 1 for count in sent.values() if count > 1)
    reruns = sum(job.attempts - 1 for job in done)
    print(
        f"\nchaos kill -9: {KILLS} kills, {len(ids)} jobs, lost {len(lost)}, duplicate emails {duplicates}, "
        f"jobs run again {reruns}, all done in {recovered:.1f} s"
    )
    assert lost == []
    # A run killed between the committed "sending" mark and the record of the send
    # leaves it uncertain (SendGrid keeps no idempotency keys): the rerun records
    # that instead of risking a second copy. Only such a job may lack its email.
    uncertain = {
        str(effect.job_id)
        for effect in JobEffect.select().where(JobEffect.key.in_([f"job:{job.id}:email" for job in done]))
        if (effect.result or {}).get("uncertain")
    }
    emails = {str(user.id): user.email for user in users}
    unsent = {
        str(job.id)
        for job in done
        if job.kind == "accounts.send_verification_email" and emails[str(job.owner_id)] not in sent
    }
    assert duplicates == 0 and set(sent) <= set(emails.values())
    assert unsent <= uncertain, "an email is missing without its job recording the send as uncertain"

    from tasks.runtime import init_runtime
    from tests.tasks.live import live_settings

    worker = init_runtime(live_settings(env), init_db=False)
    for job in done:
        if job.kind == "exports.build_export":
            key = archive_key(job)
            assert job.result["file"]["key"] == key
            with zipfile.ZipFile(io.BytesIO(worker.storage.get(key))) as archive:
                assert "profile.json" in archive.namelist()
