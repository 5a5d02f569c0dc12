"""What a worker process needs at hand: database, Redis, event bus, mailer, text messages.

Built once per worker process (after the fork) by ``init_runtime``; tests build
it with their own settings.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis

from models.db import init_database
from services.events import EventBus
from services.mail import make_mailer
from services.sms import make_sms


@dataclass
class Runtime:
    settings: object
    redis: object
    events: EventBus
    mailer: object
    sms: object


_runtime: Runtime | None = None


def init_runtime(settings, *, init_db: bool = True, **overrides) -> Runtime:
    """Build the process's runtime; ``init_db=False`` when the database proxy is already bound."""
    global _runtime
    if init_db:
        init_database(settings)
    client = overrides.pop("redis", None) or redis.Redis.from_url(settings.redis_url)
    _runtime = Runtime(
        settings=settings,
        redis=client,
        events=overrides.pop("events", None) or EventBus(client, settings.redis_prefix),
        mailer=overrides.pop("mailer", None) or make_mailer(settings),
        sms=overrides.pop("sms", None) or make_sms(settings),
    )
    return _runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("worker runtime not initialised; call tasks.runtime.init_runtime(settings)")
    return _runtime
