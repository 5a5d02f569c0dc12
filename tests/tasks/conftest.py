"""Tasks run in this process, inside the test's transaction, with a real runtime (database, Redis, outbox)."""

from __future__ import annotations

import pytest

from tasks.runtime import init_runtime
from tests.api.conftest import RecordingJobQueue


@pytest.fixture
def queue():
    """Jobs that tasks submit (the runtime's ``jobs``) are recorded here instead of going to the broker."""
    return RecordingJobQueue()


@pytest.fixture
def runtime(settings, redis, queue):
    return init_runtime(settings, redis=redis, init_db=False, jobs=queue)
