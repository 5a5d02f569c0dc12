"""``python -m bench jobs``: Celery no-op throughput, raw vs job-tracked, and enqueue → started latency.

Both runs use one worker command line, Hearth's Celery configuration
(``celeryconfig``: acks_late, reject_on_worker_lost, prefetch 1) under
``celery -A bench.noop_tasks worker --pool=prefork --concurrency=2 -Q default``:

* ``raw``: ``tasks.bench_raw_noop``, a plain ``@app.task`` that counts itself in Redis;
* ``job-tracked``: ``tasks.bench_job_noop``, a real job (``Job`` row owned by a user,
  claim, lease heartbeat thread, finish, ``job.started``/``job.succeeded`` events).

Throughput: BENCH_JOBS (3000) messages are enqueued first, then a fresh worker
drains them; the rate is (N - 1) / (last finish - first finish). Latency: with
the worker running, BENCH_JOBS_RATE (100) per second for BENCH_JOBS_SECONDS
(10) seconds; enqueue → started is ``started_at - created_at`` of the job (the
API's accept → claim; it includes the row's INSERT) and, for raw tasks, task
start minus the time just before ``send_task``.

The run has its own database (``bench.stack``), Redis key prefix, and a Redis
database of its own for the broker (BENCH_BROKER_DB, default 13; it must be empty).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time
import uuid

from bench import Row, Run, Target, benchmark, servers, stack

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
WORKER_ARGS = (
    "--pool=prefork",
    "--concurrency=2",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
    "-l",
    "warning",
)


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Worker:
    def __init__(self, env: dict, log_path: pathlib.Path, queues: str = "default"):
        self.env = env
        self.log_path = log_path
        self.queues = queues
        self.popen = None

    def start(self) -> Worker:
        argv = [
            str(BIN / "celery"),
            "-A",
            "bench.noop_tasks",
            "worker",
            *WORKER_ARGS,
            "-Q",
            self.queues,
            "-n",
            f"bench-{os.getpid()}-{time.monotonic_ns()}@%h",
        ]
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.popen = None


@contextlib.contextmanager
def worker(env: dict, log_path: pathlib.Path):
    proc = Worker(env, log_path).start()
    try:
        yield proc
    finally:
        proc.stop()


def _wait(predicate, timeout: float, what: str, proc: Worker | None = None, interval: float = 0.05):
    """Poll ``predicate`` (truthy when done, else a progress count) until done.

    ``timeout`` is how long it may go without progress, so a slow but moving drain on a busy machine
    is not cut short; a stuck one fails with the count reached and the worker's log.
    """
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        value = predicate()
        if value is True or (value and not isinstance(value, int)):
            return value
        if value != seen:
            seen, deadline = value, time.monotonic() + timeout
        if proc is not None and not proc.alive():
            raise RuntimeError(f"the worker stopped while waiting for {what}:\n{proc.tail()}")
        time.sleep(interval)
    raise RuntimeError(
        f"no progress for {timeout:g} s waiting for {what} (reached {seen!r})"
        + (f"; worker log:\n{proc.tail()}" if proc else "")
    )


@benchmark(
    "jobs",
    "Celery no-op drain, raw @app.task vs job-tracked, and enqueue → started latency",
    targets=(Target("job-tracked", "raw", 0.6),),
)
def jobs(run: Run) -> list[Row]:
    count = int(_setting("BENCH_JOBS", "3000"))
    rate = float(_setting("BENCH_JOBS_RATE", "100"))
    seconds = float(_setting("BENCH_JOBS_SECONDS", "10"))
    broker_db = int(_setting("BENCH_BROKER_DB", "13"))
    with stack.workspace(run, "jobs", broker_db) as (hearth, directory, broker):
        return _measure(run, hearth, directory, broker, broker_db, count, rate, seconds)


def _measure(run, hearth, directory, broker, broker_db, count, rate, seconds) -> list[Row]:
    from celery import Celery

    import celeryconfig
    from models.accounts import User
    from models.base import utcnow
    from models.db import db
    from models.job_submission import jobs_submitted_after_commit
    from models.jobs import Job, new_job_id
    from services.jobqueue import CeleryJobQueue

    broker_url = stack.broker_url(broker_db)
    counter_prefix = f"{hearth.redis_prefix}noop:"
    env = servers.environment({**hearth.env, "BROKER_URL": broker_url, "BENCH_COUNTER_URL": stack.REDIS_URL})
    sender = Celery("hearth-bench", broker=broker_url)
    sender.config_from_object(celeryconfig)
    queue = CeleryJobQueue(sender)
    counter = hearth.redis
    log_path = directory / "worker.log"
    run.settings["jobs"] = (
        f"celery -A bench.noop_tasks worker {' '.join(WORKER_ARGS)} -Q default; {count} tasks per "
        f"drain; latency at {rate:g}/s for {seconds:g} s; broker redis db {broker_db}"
    )

    with db.connection_context():
        owner = User.get(User.email == stack.EMAIL)

    def enqueue_raw(run_id: str, n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            sender.send_task("tasks.bench_raw_noop", args=[run_id], retry=False)
        return n / (time.perf_counter() - started)

    def enqueue_jobs(n: int, tag: str) -> float:
        ids = [new_job_id() for _ in range(n)]
        with db.connection_context():
            for start in range(0, n, 1000):
                now = utcnow()
                Job.insert_many(
                    [
                        {
                            "id": i,
                            "kind": "bench_job_noop",
                            "queue": "default",
                            "owner": owner.id,
                            "input": {"tag": tag},
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in ids[start : start + 1000]
                    ]
                ).execute()
        started = time.perf_counter()
        for i in ids:
            queue.submit(_JobRef(i))
        return n / (time.perf_counter() - started)

    def succeeded(tag: str) -> int:
        with db.connection_context():
            return Job.select().where((Job.status == "succeeded") & (Job.input["tag"] == tag)).count()

    # --- drain: raw ---------------------------------------------------------------------------
    raw_id = f"{counter_prefix}{uuid.uuid4().hex[:8]}"
    raw_enqueue = enqueue_raw(raw_id, count)
    run.log(f"raw: {count} no-op tasks enqueued ({raw_enqueue:.0f}/s); starting the worker")
    with worker(env, log_path) as proc:
        _wait(lambda: _done(int(counter.get(f"{raw_id}:done") or 0), count), 60, "the raw drain", proc)
    first, last = float(counter.get(f"{raw_id}:first")), float(counter.get(f"{raw_id}:last"))
    raw_rate = (count - 1) / (last - first)
    run.log(f"raw: drained at {raw_rate:.0f} tasks/s")

    # --- drain: job-tracked -------------------------------------------------------------------
    tag = "drain"
    job_enqueue = enqueue_jobs(count, tag)
    run.log(f"job-tracked: {count} jobs created and enqueued ({job_enqueue:.0f}/s); starting the worker")
    with worker(env, log_path) as proc:
        _wait(lambda: _done(succeeded(tag), count), 60, "the job-tracked drain", proc, interval=0.25)
    with db.connection_context():
        from peewee import fn

        lo, hi, failed = (
            Job.select(
                fn.MIN(Job.finished_at), fn.MAX(Job.finished_at), fn.COUNT(Job.id).filter(Job.status != "succeeded")
            )
            .where(Job.input["tag"] == tag)
            .tuples()
            .get()
        )
    job_rate = (count - 1) / (hi - lo).total_seconds()
    run.log(f"job-tracked: drained at {job_rate:.0f} jobs/s")

    # --- enqueue → started at a steady rate -----------------------------------------------------
    total = int(rate * seconds)
    lat_id = f"{counter_prefix}{uuid.uuid4().hex[:8]}"
    with worker(env, log_path) as proc:
        warm = f"{counter_prefix}warm"
        sender.send_task("tasks.bench_raw_noop", args=[warm], retry=False)
        _wait(lambda: _done(int(counter.get(f"{warm}:done") or 0), 1), 60, "the worker to start", proc)
        raw_sent = _paced(
            total, rate, lambda: sender.send_task("tasks.bench_raw_noop", args=[lat_id, time.time()], retry=False)
        )
        _wait(lambda: _done(int(counter.get(f"{lat_id}:done") or 0), total), 60, "the raw latency run", proc)
        raw_lat = [float(v) for v in counter.lrange(f"{lat_id}:lat", 0, -1)]

        def one_job():  # as a request does: created, then submitted after its commit
            with jobs_submitted_after_commit(queue.submit), db.connection_context():
                Job.create(kind="bench_job_noop", queue="default", owner=owner.id, input={"tag": "lat"})

        job_sent = _paced(total, rate, one_job)
        _wait(lambda: _done(succeeded("lat"), total), 60, "the job latency run", proc, interval=0.25)
    with db.connection_context():
        job_lat = [
            (s - c).total_seconds() * 1000
            for s, c in Job.select(Job.started_at, Job.created_at).where(Job.input["tag"] == "lat").tuples()
        ]

    run.note(
        f"jobs: drain = (N-1)/(last finish - first finish) with N={count} enqueued before a fresh worker "
        f"started; enqueue alone ran at {raw_enqueue:.0f}/s (raw) and {job_enqueue:.0f}/s (jobs, "
        "rows inserted in bulk first)"
    )
    run.note(
        f"jobs: p50/p99 of the drain rows are enqueue → started at a steady {rate:g}/s for {seconds:g} s "
        "(job: started_at - created_at, includes the INSERT; raw: task start - before send_task)"
    )
    return [
        Row(
            "raw",
            raw_rate,
            statistics.median(raw_lat),
            percentile(raw_lat, 99),
            requests=count,
            detail={
                "enqueue_per_s": round(raw_enqueue),
                "latency_rate_per_s": round(raw_sent, 1),
                "latency_samples": len(raw_lat),
            },
        ),
        Row(
            "job-tracked",
            job_rate,
            statistics.median(job_lat),
            percentile(job_lat, 99),
            baseline="raw",
            requests=count,
            errors=int(failed or 0),
            detail={
                "enqueue_per_s": round(job_enqueue),
                "latency_rate_per_s": round(job_sent, 1),
                "latency_samples": len(job_lat),
            },
        ),
    ]


def _done(reached: int, wanted: int):
    """For ``_wait``: True when done, else the count so far (progress)."""
    return True if reached >= wanted else reached


class _JobRef:
    """What ``CeleryJobQueue.submit`` reads from a job: its kind and id."""

    kind = "bench_job_noop"

    def __init__(self, job_id):
        self.id = job_id


def _paced(total: int, rate: float, send) -> float:
    """Call ``send`` ``total`` times at ``rate`` per second (no catch-up bursts); the achieved rate."""
    interval = 1.0 / rate
    started = time.perf_counter()
    next_at = started
    for _ in range(total):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send()
        next_at = max(next_at + interval, time.perf_counter() - interval)
    return total / (time.perf_counter() - started)
