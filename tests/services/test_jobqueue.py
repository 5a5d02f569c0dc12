"""The API's job queue publishes by task name, without the task modules, to the queue a worker listens on."""

from __future__ import annotations

import pytest

from models.jobs import Job
from services.jobqueue import CeleryJobQueue, producer_app
from tasks.app import app as worker_app

worker_app.loader.import_default_modules()  # every task the worker registers


@pytest.fixture
def queue(settings, redis_prefix):
    """A producer on the test's Redis whose queues live under the test's key prefix."""
    app = producer_app(settings)
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "global_keyprefix": redis_prefix}
    yield CeleryJobQueue(app)
    app.close()


def test_every_task_is_routed_by_the_producer_as_by_the_worker(settings):
    producer = producer_app(settings)
    names = [name for name in worker_app.tasks if name.startswith("tasks.")]
    assert len(names) > 20
    for name in names:
        assert (
            producer.amqp.router.route({}, name)["queue"].name == worker_app.amqp.router.route({}, name)["queue"].name
        ), name


@pytest.mark.parametrize(
    ("kind", "queue_name"),
    [
        ("accounts.send_password_reset", "notify"),
        ("uploads.scan_upload", "scans"),
        ("jobs.selftest", "default"),
        ("search.reindex_property", "search"),
    ],
)
def test_a_submitted_job_waits_in_its_queue_on_the_broker(queue, redis, redis_prefix, kind, queue_name):
    assert queue.backlog() == set()
    assert queue.submit(Job(kind=kind)) is True
    assert redis.llen(f"{redis_prefix}{queue_name}") == 1
    assert queue.backlog() == {queue_name}


def test_an_unreachable_broker_refuses_at_once_and_reports_no_backlog(settings):
    app = producer_app(settings)
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    dead = CeleryJobQueue(app)
    assert dead.submit(Job(kind="jobs.selftest")) is False  # the job stays queued for the sweep
    assert dead.backlog() == set()
