"""``python -m bench notifications``: notification fan-out through the outbox backends, beside raw Celery no-ops.

Every drain runs on the jobs bench's worker command line (``celery -A
bench.noop_tasks worker --pool=prefork --concurrency=2``, Hearth's Celery
configuration) with ``-Q default,notify``, since the fan-out runs on ``notify``:

* ``raw``: BENCH_NOTIFICATIONS (2000) ``tasks.bench_raw_noop`` tasks (the baseline);
* ``job-tracked``: as many no-op jobs (``tasks.bench_job_noop``): the job machinery
  that every fan-out runs in (claim, lease, finish, job events), doing nothing;
* ``fan-out``: as many ``notify(user, "message.received", ...)`` calls, one per user,
  every user with a verified email (in-app and email: the type's defaults) and
  every BENCH_NOTIFICATIONS_SMS_EVERY-th (4th) also with a verified phone and SMS
  turned on; their ``notifications.fan_out`` jobs are submitted after the commit,
  as the API does. Mail and text messages go to the outbox backends (files under
  the run's ``HEARTH_VAR_DIR``); the run checks that every one is there.

Each drain's messages are all enqueued first, then a fresh worker starts; the
rate is (N - 1) / (last finish - first finish), so start-up is not counted.
The run has its own database (``bench.stack``) and a Redis database of its own
for the broker (BENCH_BROKER_DB, default 10; it must be empty).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import statistics
import sys
import time
import uuid

from bench import Row, Run, benchmark, jobs, servers, stack

BIN = pathlib.Path(sys.executable).parent
QUEUES = "default,notify"
NOOP_KIND = jobs._JobRef.kind


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


@benchmark(
    "notifications",
    "notification fan-out (in-app, email, SMS) through the outbox backends vs raw Celery no-ops on the same worker",
)
def notifications(run: Run) -> list[Row]:
    count = int(_setting("BENCH_NOTIFICATIONS", "2000"))
    sms_every = int(_setting("BENCH_NOTIFICATIONS_SMS_EVERY", "4"))
    broker_db = int(_setting("BENCH_BROKER_DB", "10"))
    with stack.workspace(run, "notifications", broker_db) as (hearth, directory, _):
        return _measure(run, hearth, directory, broker_db, count, sms_every)


def _measure(run, hearth, directory, broker_db, count, sms_every) -> list[Row]:
    from celery import Celery

    import celeryconfig
    from models.notifications import FAN_OUT_KIND
    from services.jobqueue import CeleryJobQueue
    from settings import Settings

    broker_url = stack.broker_url(broker_db)
    env = servers.environment({**hearth.env, "BROKER_URL": broker_url, "BENCH_COUNTER_URL": stack.REDIS_URL})
    settings = Settings.from_env(env)
    sender = Celery("hearth-bench", broker=broker_url)
    sender.config_from_object(celeryconfig)
    queue = CeleryJobQueue(sender)
    log_path = directory / "worker.log"
    run.settings["notifications"] = (
        f"celery -A bench.noop_tasks worker {' '.join(jobs.WORKER_ARGS)} with "
        f"-Q {QUEUES}; {count} per drain; SMS for every {sms_every}th user; "
        f"mail {settings.mail_backend}, sms {settings.sms_backend}; "
        f"broker redis db {broker_db}"
    )
    users = _seed_users(count, sms_every)
    with_sms = sum(1 for u in users if u["phone"])

    # --- raw no-ops -------------------------------------------------------------------------
    counter = hearth.redis
    raw_id = f"{hearth.redis_prefix}noop:{uuid.uuid4().hex[:8]}"
    for _ in range(count):
        sender.send_task("tasks.bench_raw_noop", args=[raw_id], retry=False)
    run.log(f"raw: {count} no-op tasks enqueued; starting the worker")
    with _worker(env, log_path) as proc:
        jobs._wait(lambda: jobs._done(int(counter.get(f"{raw_id}:done") or 0), count), 60, "the raw drain", proc)
    raw_rate = (count - 1) / (float(counter.get(f"{raw_id}:last")) - float(counter.get(f"{raw_id}:first")))
    run.log(f"raw: drained at {raw_rate:.0f} tasks/s")

    # --- job-tracked no-ops: the job machinery the fan-out runs in, doing nothing --------------
    for job_id in _noop_jobs(count):
        queue.submit(jobs._JobRef(job_id))
    run.log(f"job-tracked: {count} no-op jobs enqueued; starting the worker")
    with _worker(env, log_path) as proc:
        jobs._wait(lambda: jobs._done(_settled(NOOP_KIND), count), 60, "the job-tracked drain", proc, interval=0.25)
    noop = _drain(NOOP_KIND)
    run.log(f"job-tracked: drained at {noop['rate']:.0f} jobs/s")

    # --- fan-out ----------------------------------------------------------------------------
    started = time.perf_counter()
    fan_outs = _notify_all(users)
    notify_rate = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for job in fan_outs:
        queue.submit(job)
    submit_rate = count / (time.perf_counter() - started)
    run.log(
        f"fan-out: {count} notifications written ({notify_rate:.0f}/s) and submitted ({submit_rate:.0f}/s); "
        "starting the worker"
    )
    with _worker(env, log_path) as proc:
        jobs._wait(lambda: jobs._done(_settled(FAN_OUT_KIND), count), 60, "the fan-out drain", proc, interval=0.25)
    fan = _drain(FAN_OUT_KIND)
    emails = len(list(settings.outbox_dir.glob("*.eml"))) if settings.outbox_dir.exists() else 0
    texts = len(list(settings.sms_outbox_dir.glob("*.json"))) if settings.sms_outbox_dir.exists() else 0
    missing = max(0, count - emails) + max(0, with_sms - texts)
    run.log(f"fan-out: drained at {fan['rate']:.0f} notifications/s; outbox {emails} emails, {texts} text messages")

    run.note(
        f"notifications: fan-out {fan['rate']:.0f} notifications/s against raw Celery no-ops "
        f"{raw_rate:.0f}/s on the same worker (ratio {fan['rate'] / raw_rate:.2f}) and job-tracked no-ops "
        f"{noop['rate']:.0f}/s ({fan['rate'] / noop['rate']:.2f}); {count} notifications, each in-app + email, "
        f"{with_sms} also SMS: {emails} emails and {texts} text messages in the outboxes, "
        f"{fan['failed']} fan-out jobs not succeeded"
    )
    run.note(
        f"notifications: drain = (N-1)/(last finish - first finish), N enqueued before a fresh worker started; "
        "p50/p99 of the job rows = one job's run (started_at → finished_at) on a worker process. "
        f"notify() wrote the {count} notifications at {notify_rate:.0f}/s in one transaction; their jobs "
        f"were submitted at {submit_rate:.0f}/s"
    )
    return [
        Row("raw", raw_rate, float("nan"), float("nan"), requests=count),
        Row(
            "job-tracked",
            noop["rate"],
            noop["p50_ms"],
            noop["p99_ms"],
            baseline="raw",
            requests=count,
            errors=noop["failed"],
        ),
        Row(
            "fan-out",
            fan["rate"],
            fan["p50_ms"],
            fan["p99_ms"],
            baseline="raw",
            requests=count,
            errors=fan["failed"] + missing,
            detail={
                "emails": emails,
                "texts": texts,
                "users_with_sms": with_sms,
                "deliveries": fan["deliveries"],
                "vs_job_tracked": round(fan["rate"] / noop["rate"], 3),
                "notify_per_s": round(notify_rate),
                "submit_per_s": round(submit_rate),
            },
        ),
    ]


def _settled(kind: str) -> int:
    """How many jobs of ``kind`` have ended (succeeded, or failed for good)."""
    from models.db import db
    from models.jobs import Job

    with db.connection_context():
        return Job.select().where((Job.kind == kind) & Job.status.in_(("succeeded", "failed", "cancelled"))).count()


def _drain(kind: str) -> dict:
    """Rate ((N-1)/(last - first finish)), run-time percentiles and failures of the jobs of ``kind``."""
    from peewee import fn

    from models.db import db
    from models.jobs import Job
    from models.notifications import NotificationDelivery as Delivery

    with db.connection_context():
        runs = list(Job.select(Job.started_at, Job.finished_at, Job.status).where(Job.kind == kind).tuples())
        deliveries = {
            f"{channel}:{status}": n
            for channel, status, n in Delivery.select(Delivery.channel, Delivery.status, fn.COUNT(Delivery.id))
            .group_by(Delivery.channel, Delivery.status)
            .tuples()
        }
    first = min(finished for _, finished, _ in runs)
    last = max(finished for _, finished, _ in runs)
    run_ms = [(finished - started).total_seconds() * 1000 for started, finished, _ in runs]
    return {
        "rate": (len(runs) - 1) / (last - first).total_seconds(),
        "p50_ms": statistics.median(run_ms),
        "p99_ms": jobs.percentile(run_ms, 99),
        "failed": sum(1 for *_, status in runs if status != "succeeded"),
        "deliveries": deliveries,
    }


def _noop_jobs(count: int) -> list:
    """``count`` rows of the jobs bench's no-op job kind, owned by the stack's user, inserted in bulk."""
    from models.accounts import User
    from models.base import utcnow
    from models.db import db
    from models.jobs import Job, new_job_id

    ids = [new_job_id() for _ in range(count)]
    now = utcnow()
    with db.connection_context(), db.atomic():
        owner = User.get(User.email == stack.EMAIL).id
        for start in range(0, count, 1000):
            Job.insert_many(
                [
                    {
                        "id": i,
                        "kind": NOOP_KIND,
                        "queue": "default",
                        "owner": owner,
                        "input": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in ids[start : start + 1000]
                ]
            ).execute()
    return ids


def _notify_all(users: list[dict]) -> list:
    """One "message.received" notification per user, in one transaction, as a message would raise it."""
    from models.db import db
    from models.notifications import notify

    with db.connection_context(), db.atomic():
        return [
            notify(
                u["id"],
                "message.received",
                title=f"New message from Buyer {i}",
                body="Hi, is the house still available? Could we see it on Saturday morning?",
                data={"conversation_id": str(uuid.uuid4()), "message_id": i + 1, "property_id": str(uuid.uuid4())},
                dedupe_key=f"bench:{u['id']}",
            )
            for i, u in enumerate(users)
        ]


@contextlib.contextmanager
def _worker(env: dict, log_path: pathlib.Path):
    proc = jobs.Worker(env, log_path, queues=QUEUES).start()
    try:
        yield proc
    finally:
        proc.stop()


def _seed_users(count: int, sms_every: int) -> list[dict]:
    """``count`` users with a verified email; every ``sms_every``-th with a verified phone and SMS on."""
    from models.accounts import User
    from models.base import utcnow
    from models.db import db
    from models.notifications import NotificationPreference

    now = utcnow()
    users = [
        {
            "id": uuid.uuid4(),
            "email": f"notify{i}@bench.hearth.test",
            "full_name": f"Notify {i}",
            "role": "buyer",
            "email_verified_at": now,
            "created_at": now,
            "updated_at": now,
            "phone": f"+1512{i:07d}" if sms_every and i % sms_every == 0 else None,
        }
        for i in range(count)
    ]
    preferences = [
        {"user": u["id"], "types": {"message.received": {"sms": True}}, "updated_at": now} for u in users if u["phone"]
    ]
    with db.connection_context(), db.atomic():
        for start in range(0, count, 1000):
            User.insert_many(users[start : start + 1000]).execute()
        for start in range(0, len(preferences), 1000):
            NotificationPreference.insert_many(preferences[start : start + 1000]).execute()
        # The column is new (migration 0007); written in SQL so this does not depend on the model's fields.
        db.execute_sql("UPDATE users SET phone_verified_at = %s WHERE phone IS NOT NULL", (now,))
    return users
