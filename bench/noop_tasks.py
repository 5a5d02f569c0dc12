"""The Celery app the jobs benchmark starts its worker with: Hearth's app plus two no-op tasks.

``celery -A bench.noop_tasks worker`` loads ``tasks.app.app`` (same configuration:
acks_late, reject_on_worker_lost, prefetch 1, JSON) and registers

* ``tasks.bench_raw_noop``: a plain ``@app.task`` that only counts itself in Redis
  (the baseline), and
* ``tasks.bench_job_noop``: a real job (kind ``bench_job_noop``) through
  ``tasks.base.job_task``: claim, lease heartbeat, finish, job events.

Neither name matches a route, so both go to the ``default`` queue.
"""

from __future__ import annotations

import functools
import os
import time

import redis as redis_lib

from tasks.app import app
from tasks.base import JobContext, job_task


@functools.cache
def _counter() -> redis_lib.Redis:
    """One client per worker process, made on its first task (after the fork)."""
    return redis_lib.Redis.from_url(os.environ["BENCH_COUNTER_URL"])


@app.task(name="tasks.bench_raw_noop", ignore_result=True)
def raw_noop(run: str, sent_at: float | None = None) -> None:
    """Count the call; with ``sent_at`` also record enqueue → started in milliseconds."""
    started = time.time()
    client = _counter()
    pipe = client.pipeline(transaction=False)
    pipe.incr(f"{run}:done")
    pipe.set(f"{run}:last", repr(started))
    if sent_at is not None:
        pipe.rpush(f"{run}:lat", repr((started - sent_at) * 1000))
    count = pipe.execute()[0]
    if count == 1:
        client.set(f"{run}:first", repr(started))


@job_task(name="tasks.bench_job_noop")
def job_noop(ctx: JobContext) -> dict:
    return {}


__all__ = ["app", "job_noop", "raw_noop"]
