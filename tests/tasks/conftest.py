"""Tasks run in this process, inside the test's transaction, with a real runtime (database, Redis, outbox)."""
from __future__ import annotations

import pytest

from tasks.app import app as celery_app
from tasks.runtime import init_runtime
from tests.api.conftest import RecordingJobQueue


@pytest.fixture
def runtime(settings, redis):
    return init_runtime(settings, redis=redis, init_db=False)


@pytest.fixture
def queue():
    """Jobs that tasks submit (``tasks.base.job_queue()``) are recorded here instead of going to the broker."""
    recording = RecordingJobQueue()
    celery_app.conf.hearth_job_queue = recording
    yield recording
    celery_app.conf.hearth_job_queue = None
