"""The beat schedule, the routes and the queues name tasks by string: check each name against the tasks
the worker really registers, so a renamed or moved task cannot leave a schedule entry or a route that
silently matches nothing (a periodic job that never runs, a task on the wrong queue)."""

from __future__ import annotations

import fnmatch

import pytest

import celeryconfig
from schedules import beat_schedule
from tasks.app import app

# Queues declared before the work that will use them: their features are not built yet. Remove one
# here when its first task is routed to it.
RESERVED_QUEUES: set[str] = set()


@pytest.fixture(scope="module")
def registered() -> set[str]:
    app.loader.import_default_modules()  # every task module listed in tasks.app
    return {name for name in app.tasks if not name.startswith("celery.")}


def queue_of(name: str) -> str:
    route = app.amqp.router.route({}, name)
    queue = route["queue"]
    return getattr(queue, "name", queue)


def test_tasks_are_registered(registered):
    # A sanity check that the loader found the task modules, so the tests below do not pass vacuously.
    assert "tasks.jobs.sweep_jobs" in registered
    assert len({name.split(".")[1] for name in registered}) >= 8


def test_every_scheduled_task_is_registered(registered):
    missing = {entry: spec["task"] for entry, spec in beat_schedule.items() if spec["task"] not in registered}
    assert missing == {}


def test_every_scheduled_task_expires():
    # A tick not picked up in time is dropped, not piled up behind a stopped worker.
    assert [entry for entry, spec in beat_schedule.items() if not spec.get("options", {}).get("expires")] == []


def test_every_route_matches_a_registered_task(registered):
    unmatched = [
        pattern
        for pattern in celeryconfig.task_routes
        if not any(fnmatch.fnmatchcase(name, pattern) for name in registered)
    ]
    assert unmatched == []


def test_every_task_goes_to_a_declared_queue(registered):
    undeclared = {name: queue_of(name) for name in registered if queue_of(name) not in celeryconfig.QUEUES}
    assert undeclared == {}


def test_every_queue_has_a_task_except_the_reserved_ones(registered):
    used = {queue_of(name) for name in registered}
    idle = set(celeryconfig.QUEUES) - used
    assert idle == RESERVED_QUEUES, "a reserved queue that now has tasks leaves RESERVED_QUEUES"


def test_routes_send_tasks_where_the_config_says(registered):
    # Exact names win over the patterns: the diagnostic job runs on default, the other job upkeep on
    # maintenance; scans have a queue of their own.
    assert queue_of("tasks.jobs.selftest") == "default"
    assert queue_of("tasks.jobs.sweep_jobs") == "maintenance"
    assert queue_of("tasks.uploads.scan_upload") == "scans"
    assert queue_of("tasks.uploads.rescan_stalled") == "maintenance"
    # Money moves on a queue of its own.
    assert queue_of("tasks.escrows.settle") == "money"
    assert queue_of("tasks.escrows.collect_deposit") == "money"
    assert queue_of("tasks.payments.apply_event") == "money"
