"""The job queue on RabbitMQ: quorum queues, the backlog the sweep reads, countdowns by native delayed delivery."""

from __future__ import annotations

import dataclasses
import time

import pytest
from kombu import Connection
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

import celeryconfig
from models.jobs import Job
from services.jobqueue import CeleryJobQueue, producer_app
from tests.rabbitmq import rabbitmq_vhost


@pytest.fixture
def amqp_url():
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def queue(settings, amqp_url):
    app = producer_app(dataclasses.replace(settings, broker_url=amqp_url))
    yield CeleryJobQueue(app)
    app.close()


def _declare(url: str) -> None:
    """What a worker does when it starts: declare its queues and the delayed-delivery topology."""
    with Connection(url) as conn:
        for q in celeryconfig.queues_for(url):
            q(conn.default_channel).declare()
        declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum")
        for q in celeryconfig.queues_for(url):
            bind_queue_to_native_delayed_delivery_exchange(conn, q)


def _ready(url: str, name: str) -> int:
    with Connection(url) as conn:
        return conn.default_channel.queue_declare(queue=name, passive=True).message_count


def test_on_rabbitmq_every_queue_is_a_quorum_queue_on_a_topic_exchange():
    queues = celeryconfig.queues_for("amqp://guest:guest@127.0.0.1:5672//")
    assert [q.name for q in queues] == list(celeryconfig.QUEUES)
    assert {q.queue_arguments["x-queue-type"] for q in queues} == {"quorum"}
    assert {q.exchange.type for q in queues} == {"topic"}
    # Redis keeps its plain queues.
    assert celeryconfig.queues_for("redis://127.0.0.1:6379/0") == celeryconfig.task_queues


def test_a_submitted_job_waits_in_its_quorum_queue_and_the_sweep_sees_the_backlog(queue, amqp_url):
    assert queue.backlog() == set()  # nothing declared yet: no queue, nothing waiting
    _declare(amqp_url)
    assert queue.backlog() == set()
    assert queue.submit(Job(kind="uploads.scan_upload")) is True
    assert queue.submit(Job(kind="jobs.selftest")) is True
    assert _ready(amqp_url, "scans") == 1 and _ready(amqp_url, "default") == 1
    assert queue.backlog() == {"scans", "default"}


def test_a_countdown_is_delivered_after_its_delay_not_before(queue, amqp_url):
    _declare(amqp_url)
    started = time.monotonic()
    assert queue.submit(Job(kind="jobs.selftest"), countdown=2) is True
    assert _ready(amqp_url, "default") == 0  # held in RabbitMQ's delay queues, not in a worker's memory
    while _ready(amqp_url, "default") == 0:
        assert time.monotonic() - started < 15, "the delayed job never arrived"
        time.sleep(0.2)
    assert time.monotonic() - started >= 1.5
