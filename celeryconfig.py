"""Celery configuration: broker, queues, routes, delivery guarantees, time limits, beat schedule.

Read by ``tasks.app`` through ``config_from_object``; the broker URL comes from
``settings`` (the only reader of the environment).
"""

from kombu import Exchange, Queue

from schedules import beat_schedule  # noqa: F401  (the schedule lives only in schedules/)

QUEUES = ("default", "notify", "scans", "money", "search", "imports", "exports", "maintenance")
task_queues = tuple(Queue(name) for name in QUEUES)
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
# On RabbitMQ the queues are quorum queues (replicated, durable; no priorities, no global QoS)
# bound to one topic exchange: Celery's native delayed delivery, which quorum queues need for
# countdowns (a retry's backoff), refuses direct exchanges.
AMQP_EXCHANGE = Exchange("hearth.tasks", type="topic", durable=True)


def queues_for(broker_url: str) -> tuple[Queue, ...]:
    """The declared queues for this broker: plain ones on Redis, quorum queues on RabbitMQ."""
    if broker_url.split(":", 1)[0] not in AMQP_SCHEMES:
        return task_queues
    return tuple(
        Queue(name, AMQP_EXCHANGE, routing_key=name, durable=True, queue_arguments={"x-queue-type": "quorum"})
        for name in QUEUES
    )


task_default_queue = "default"
# Tasks are routed by the module they live in: tasks/<domain>.py → queue.
# Exact names are matched before the patterns.
task_routes = {
    # The diagnostic job measures the queue most work goes through.
    "tasks.jobs.selftest": {"queue": "default"},
    "tasks.jobs.*": {"queue": "maintenance"},
    "tasks.accounts.*": {"queue": "notify"},
    # Notification fan-out, phone codes, digests; saved-search alert scans create notifications.
    "tasks.notifications.*": {"queue": "notify"},
    "tasks.phone.*": {"queue": "notify"},
    "tasks.saved_searches.*": {"queue": "notify"},
    "tasks.exports.*": {"queue": "exports"},
    # The Supabase import: long runs, apart so they never hold up anything else.
    "tasks.imports.*": {"queue": "imports"},
    "tasks.maintenance.*": {"queue": "maintenance"},
    "tasks.backups.*": {"queue": "maintenance"},
    # Search index upkeep: per-listing reindexes, full rebuilds, the stale-listing sweep.
    "tasks.search.*": {"queue": "search"},
    # Virus scans (and the previews made after a clean scan) have a queue of their own, so a
    # burst of uploads never delays mail; the upkeep of unfinished uploads is maintenance.
    "tasks.uploads.scan_upload": {"queue": "scans"},
    "tasks.uploads.*": {"queue": "maintenance"},
    # Money: deposits, settlements and provider events, apart from everything else.
    "tasks.escrows.*": {"queue": "money"},
    "tasks.payments.*": {"queue": "money"},
    # Offer and escrow deadlines change what an escrow may do with its money: the money queue.
    "tasks.money_deadlines.*": {"queue": "money"},
}

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
task_ignore_result = True  # the job row is the truth, Celery results are not used
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# Quorum queues refuse a global QoS; Celery then sets the prefetch per consumer (RabbitMQ only).
worker_detect_quorum_queues = True
task_track_started = False
worker_send_task_events = True  # Flower
task_send_sent_event = True

# The Redis transport redelivers an unacknowledged message only after the
# visibility timeout. Hard time limits stay well below it, so a message is never
# redelivered while its first delivery still runs; the job lease (swept by beat)
# recovers work from a dead worker much sooner than the timeout.
BROKER_VISIBILITY_TIMEOUT = 3600
task_soft_time_limit = 600
task_time_limit = 660
# max_retries=0: publishing fails at once when the broker is down (kombu's default retries
# held an API request for ~6 s); the job stays queued and the beat sweep enqueues it. The
# worker's own consumer connection keeps retrying (broker_connection_retry*).
broker_transport_options = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT, "max_retries": 0}
# The worker outlives a broker outage of any length: it retries the connection for ever
# (Celery's default gives up after 100 attempts and stops the worker), at startup too, and
# tasks.broker keeps kombu's cleanup of the lost connection from stopping it.
broker_connection_retry = True
broker_connection_retry_on_startup = True
broker_connection_max_retries = None
worker_hijack_root_logger = False
timezone = "UTC"
enable_utc = True

# Only the beat holding a lease in Redis sends the schedule; another beat stands by (tasks/beat.py).
beat_scheduler = "tasks.beat:LeaderScheduler"
