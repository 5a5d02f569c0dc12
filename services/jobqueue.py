"""Hands committed jobs to Celery.

A job's kind names its task (``accounts.send_verification_email`` runs
``tasks.accounts.send_verification_email``). Enqueueing happens after the
transaction that created the job commits; when the broker is unreachable the
job simply stays ``queued`` and the beat sweep enqueues it later.
"""
from __future__ import annotations

import logging

import kombu.exceptions
import redis

log = logging.getLogger("hearth.jobs")
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError,
                 ConnectionError, OSError)


def task_name(kind: str) -> str:
    return f"tasks.{kind}"


class CeleryJobQueue:
    def __init__(self, celery_app):
        self.celery = celery_app

    def submit(self, job, *, countdown: float | None = None) -> bool:
        """Publish the job's task; False (and the job left for the sweep) when the broker is down."""
        try:
            self.celery.send_task(task_name(job.kind), args=[str(job.id)], countdown=countdown,
                                  retry=False)
        except BROKER_ERRORS as exc:
            log.warning("broker unavailable; job left queued for the sweep",
                        extra={"job_id": str(job.id), "error": type(exc).__name__})
            return False
        return True

    def backlog(self) -> set[str]:
        """The broker's queues with messages waiting (empty when it cannot tell).

        A stale queued job in such a queue is most likely waiting its turn behind
        the others; the sweep leaves it there rather than grow the backlog.
        """
        queues = [queue.name for queue in self.celery.conf.task_queues or ()]
        try:
            with self.celery.connection_for_write() as conn:
                client = conn.default_channel.client
                pipe = client.pipeline()
                for name in queues:
                    pipe.llen(name)
                return {name for name, waiting in zip(queues, pipe.execute(), strict=True) if waiting}
        except Exception:  # noqa: BLE001 - without the numbers, enqueue: duplicates are harmless
            log.warning("could not read queue lengths", exc_info=True)
            return set()


__all__ = ["CeleryJobQueue", "BROKER_ERRORS", "task_name"]
