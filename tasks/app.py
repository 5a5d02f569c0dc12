"""Builds the Celery app from ``celeryconfig`` and ``settings``.

Every task derives from ``tasks.base.HearthTask`` (``task_cls``): a run submits
the jobs it creates after their commit.
"""

from __future__ import annotations

import sys

from celery import Celery
from celery.signals import setup_logging, worker_process_init

import celeryconfig
from services.jobqueue import CeleryJobQueue, broker_url
from services.logging import configure_logging
from settings import Settings
from tasks.broker import guard_released_connections
from tasks.runtime import init_runtime

guard_released_connections()

app = Celery(
    "hearth",
    include=[
        "tasks.accounts",
        "tasks.maintenance",
        "tasks.jobs",
        "tasks.exports",
        "tasks.imports",
        "tasks.search",
        "tasks.uploads",
        "tasks.notifications",
        "tasks.phone",
        "tasks.saved_searches",
        "tasks.money_deadlines",
        "tasks.escrows",
        "tasks.payments",
        "tasks.backups",
    ],
    task_cls="tasks.base:HearthTask",
)
app.config_from_object(celeryconfig)


def configure(settings: Settings) -> Celery:
    """Point the app at the broker named in ``settings`` (called at import and by tests)."""
    app.conf.broker_url = broker_url(settings)
    app.conf.task_queues = celeryconfig.queues_for(app.conf.broker_url)
    app.conf.hearth_settings = settings
    return app


configure(Settings.from_env())


@setup_logging.connect
def _configure_logging(**_):
    # Connected, Celery leaves the root logger alone: its lines go through Hearth's format like the rest.
    configure_logging(app.conf.hearth_settings, "beat" if "beat" in sys.argv[1:] else "worker")


@worker_process_init.connect
def _init_worker_process(**_):
    # Each forked worker process opens its own pooled connections.
    init_runtime(app.conf.hearth_settings, jobs=CeleryJobQueue(app))
