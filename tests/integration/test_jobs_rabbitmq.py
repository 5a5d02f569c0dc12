"""The job platform's live tests again, with RabbitMQ (quorum queues) as the broker instead of Redis.

Each test gets a vhost of its own on the RabbitMQ at 127.0.0.1:5672; the events, the relay and
the job rows stay on PostgreSQL and Redis as in production. The one live test that stops the
broker (``test_a_job_accepted_while_the_broker_was_down_runs_once_it_is_back``) stays Redis-only:
the shared RabbitMQ is not a test's to stop.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from kombu import Connection

from models.jobs import Job
from tests.factories import make_user
from tests.integration.processes import start_worker
from tests.integration.test_job_dedupe_live import (  # noqa: F401 (collected again here, on RabbitMQ)
    test_concurrent_exports_each_get_a_job_while_jobs_finish,
)
from tests.integration.test_jobs_live import (  # noqa: F401 (collected again here, on RabbitMQ)
    test_a_worker_killed_mid_job_leaves_it_to_finish_exactly_once,
    test_cancel_before_and_during_a_run,
    test_export_runs_on_a_worker_with_progress_events_and_downloads,
)
from tests.integration.test_scale_out import (  # noqa: F401 (collected again here, on RabbitMQ)
    test_events_from_either_web_reach_both_relays_and_each_job_runs_once,
    two_of_everything,
)
from tests.rabbitmq import rabbitmq_vhost
from tests.tasks.live import LiveBroker, wait_job

pytestmark = pytest.mark.integration


@pytest.fixture
def live_env(live_env):
    """The live environment with ``BROKER_URL`` on a fresh RabbitMQ vhost."""
    with rabbitmq_vhost() as url:
        yield {**live_env, "BROKER_URL": url}


def test_the_worker_runs_on_rabbitmq_quorum_queues_and_retries_through_delayed_delivery(live_env, live_db, logs, procs):
    """The worker really is on RabbitMQ, its queues are quorum queues, and a job submitted with a
    countdown (what a retry's backoff does) runs after it, through the broker's delay queues."""
    worker = start_worker(live_env, logs, queues="default")
    procs.append(worker)
    vhost = live_env["BROKER_URL"].rsplit("/", 1)[1]
    assert f"amqp://guest:**@127.0.0.1:5672/{vhost}" in worker.output()
    with Connection(live_env["BROKER_URL"]) as conn:
        declared = conn.default_channel.queue_declare(
            queue="default", passive=True, arguments={"x-queue-type": "quorum"}
        )
    assert declared.queue == "default"
    listing = subprocess.run(
        ["/usr/sbin/rabbitmqctl", "list_queues", "-p", vhost, "name", "type"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"^default\s+quorum$", listing, flags=re.M), listing

    job = Job.create(kind="jobs.selftest", queue="default", owner=make_user().id, input={"steps": 1, "step_ms": 0})
    broker = LiveBroker(live_env)
    started = time.monotonic()
    assert broker.queue.submit(job, countdown=2)
    broker.close()
    done = wait_job(job.id, lambda j: j.status == "succeeded", procs=procs, what="the delayed job to run")
    assert done.attempts == 1 and done.started_at is not None
    assert time.monotonic() - started >= 1.5
