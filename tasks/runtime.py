"""The worker's composition root: everything a task reaches, built once per worker process.

``init_runtime(settings, **overrides)`` runs after the fork (``tasks.app``) and
builds the database binding, Redis, the event bus, mailer, text messages,
storage, the virus scanner, the search cache, the job queue and the payments
provider; tasks read them through ``runtime()``. Tests build it with their own settings and pass
their own collaborators (``jobs=`` a recording queue, ``mailer=``, ``redis=``...).
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from models import domain_events
from models.db import init_database
from services import metrics
from services.events import EventBus
from services.jobqueue import CeleryJobQueue, JobQueue
from services.mail import Mailer, make_mailer
from services.payments import PaymentProvider, build_payments
from services.scanner import Scanner, make_scanner
from services.search_cache import SearchCache
from services.sms import SmsSender, make_sms
from services.storage import Storage, make_storage
from settings import Settings


@dataclass
class Runtime:
    settings: Settings
    redis: redis.Redis
    events: EventBus
    mailer: Mailer
    sms: SmsSender
    storage: Storage
    scanner: Scanner
    search_cache: SearchCache
    # Where new jobs are submitted after their commit, and retries and sweeps submit again.
    jobs: JobQueue
    # Deposits, refunds and payouts (tasks on the money queue); docs/payments.md.
    payments: PaymentProvider


_runtime: Runtime | None = None


def init_runtime(settings, *, init_db: bool = True, **overrides) -> Runtime:
    """Build the process's runtime; ``init_db=False`` when the database proxy is already bound.

    ``overrides`` replace collaborators by name (``redis``, ``events``, ``mailer``,
    ``sms``, ``storage``, ``scanner``, ``search_cache``, ``jobs``, ``payments``).
    """
    global _runtime  # noqa: PLW0603 - the composition root: one runtime per worker process, set after the fork
    unknown = set(overrides) - (set(Runtime.__dataclass_fields__) - {"settings"})
    if unknown:
        raise TypeError(f"unknown runtime collaborators: {', '.join(sorted(unknown))}")
    if init_db:
        init_database(settings)
    domain_events.listen(metrics.count_domain_event)

    def given(name: str, build):
        return overrides[name] if overrides.get(name) is not None else build()

    client = given("redis", lambda: redis.Redis.from_url(settings.redis_url))
    _runtime = Runtime(
        settings=settings,
        redis=client,
        events=given("events", lambda: EventBus(client, settings.redis_prefix)),
        mailer=given("mailer", lambda: make_mailer(settings)),
        sms=given("sms", lambda: make_sms(settings)),
        storage=given("storage", lambda: make_storage(settings)),
        scanner=given("scanner", lambda: make_scanner(settings)),
        search_cache=given(
            "search_cache", lambda: SearchCache(client, settings.redis_prefix, settings.search_cache_ttl)
        ),
        # A worker passes its own app's queue (its broker connection); anything else publishes by name.
        jobs=given("jobs", lambda: CeleryJobQueue.from_settings(settings)),
        payments=given("payments", lambda: build_payments(settings, client)),
    )
    return _runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("worker runtime not initialised; call tasks.runtime.init_runtime(settings)")
    return _runtime
