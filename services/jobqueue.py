"""Hands committed jobs to Celery.

A job's kind names its task (``accounts.send_verification_email`` runs
``tasks.accounts.send_verification_email``). Publishing needs only the task's
name: ``producer_app(settings)`` is a Celery app with the broker, queues and
routes of ``celeryconfig`` and no task module, so the API sends to the queue a
worker listens on without importing ``tasks``. Enqueueing happens after the
transaction that created the job commits (``models.job_submission``); when the
broker is unreachable the job simply stays ``queued`` and the beat sweep
enqueues it later.

``JobQueue`` is what submitters of jobs ask of a queue; tests hand in their own.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import kombu.exceptions
import redis
from celery import Celery
from kombu.transport.redis import Channel as RedisChannel

import celeryconfig
from settings import Settings

log = logging.getLogger("hearth.jobs")
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
# The task header carrying the id of the request that caused the job (``Job.request_id``).
REQUEST_ID_HEADER = "hearth_request_id"


class SubmittedJob(Protocol):
    """What the queue reads of a job (``models.jobs.Job``)."""

    @property
    def id(self) -> object: ...

    @property
    def kind(self) -> str: ...


class JobQueue(Protocol):
    def submit(self, job: SubmittedJob, *, countdown: float | None = None) -> bool:
        """Publish the job's task (after ``countdown`` seconds); False when it could not be published."""
        ...

    def backlog(self) -> set[str]:
        """The queues with messages waiting."""
        ...


def task_name(kind: str) -> str:
    return f"tasks.{kind}"


def broker_url(settings: Settings) -> str:
    """``BROKER_URL``, else ``REDIS_URL``, else a Redis on this machine."""
    return settings.broker_url or settings.redis_url or DEFAULT_BROKER_URL


def producer_app(settings: Settings, *, name: str = "hearth-producer") -> Celery:
    """A Celery app that publishes by task name, routed as the worker's app routes (``celeryconfig``)."""
    app = Celery(name, set_as_current=False)
    app.config_from_object(celeryconfig)
    # Set as an item: ``conf.broker_url`` is a read-only property (CELERY_BROKER_URL, else this item).
    app.conf["broker_url"] = broker_url(settings)
    app.conf["task_queues"] = celeryconfig.queues_for(app.conf["broker_url"])
    return app


class CeleryJobQueue:
    def __init__(self, celery_app: Celery) -> None:
        self.celery = celery_app

    @classmethod
    def from_settings(cls, settings: Settings) -> CeleryJobQueue:
        return cls(producer_app(settings))

    def submit(self, job: SubmittedJob, *, countdown: float | None = None) -> bool:
        """Publish the job's task; False (and the job left for the sweep) when the broker is down.

        The job's ``request_id`` (when it has one) travels in the task's headers
        (``REQUEST_ID_HEADER``), so the worker's lines about the message carry it.
        """
        request_id = getattr(job, "request_id", None)
        headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        try:
            self.celery.send_task(
                task_name(job.kind), args=[str(job.id)], countdown=countdown, retry=False, headers=headers
            )
        except BROKER_ERRORS as exc:
            log.warning(
                "broker unavailable; job left queued for the sweep",
                extra={"job_id": str(job.id), "error": type(exc).__name__},
            )
            return False
        return True

    def backlog(self) -> set[str]:
        """The broker's queues with messages waiting (empty when it cannot tell).

        A stale queued job in such a queue is most likely waiting its turn behind
        the others; the sweep leaves it there rather than grow the backlog.
        """
        return {name for name, waiting in self.depths().items() if waiting}

    def depths(self) -> dict[str, int]:
        """``{queue: messages waiting}`` for every Celery queue; empty when it cannot tell.

        Read from the Redis transport's lists, or with a passive declare of each
        queue on RabbitMQ (a queue no worker declared yet holds nothing).
        """
        queues = [queue.name for queue in self.celery.conf.task_queues or ()]
        try:
            with self.celery.connection_for_write() as conn:
                channel = conn.default_channel
                if isinstance(channel, RedisChannel):
                    pipe = channel.client.pipeline()
                    for name in queues:
                        pipe.llen(name)
                    return dict(zip(queues, (int(n) for n in pipe.execute()), strict=True))
                return _amqp_depths(conn, queues)
        except Exception:
            log.warning("could not read queue lengths", exc_info=True)
            return {}


def _amqp_depths(conn: kombu.Connection, queues: list[str]) -> dict[str, int]:
    """RabbitMQ: a passive declare reports a queue's ready messages without changing it."""
    depths = {}
    channel: Any = conn.channel()  # the amqp transport's channel (queue_declare, close)
    try:
        for name in queues:
            try:
                ok = channel.queue_declare(queue=name, passive=True)
            except kombu.exceptions.ChannelError:
                # Not declared yet (no worker consumed it): nothing waits there. The broker closed
                # the channel on the error; the next queue needs a new one.
                channel = conn.channel()
                depths[name] = 0
                continue
            depths[name] = int(ok.message_count)
    finally:
        channel.close()
    return depths


__all__ = [
    "BROKER_ERRORS",
    "REQUEST_ID_HEADER",
    "CeleryJobQueue",
    "JobQueue",
    "SubmittedJob",
    "broker_url",
    "producer_app",
    "task_name",
]
