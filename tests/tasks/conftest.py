"""Tasks run in this process, inside the test's transaction, with a real runtime (database, Redis, outbox)."""
from __future__ import annotations

import pytest

from tasks.runtime import init_runtime


@pytest.fixture
def runtime(settings, redis):
    return init_runtime(settings, redis=redis, init_db=False)
