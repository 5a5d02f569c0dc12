"""The relay process collects garbage rarely: a full collection over 10,000 sockets' objects stalled every socket.

(Measured with ``python -m bench relay`` at 10,000 websockets: full collections of 0.5-3 s under load,
every ~10 s; see docs/benchmarks.md.) Tests that build a relay in their own process keep Python's defaults.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from relay import app as relay_app
from tests.integration.processes import ROOT


def test_the_relay_process_freezes_its_start_up_objects_and_raises_the_thresholds(settings):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HEARTH_", "DATABASE_", "REDIS_"))},
        "PYTHONPATH": str(ROOT),
        "HEARTH_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
    }
    probe = "import gc, relay.app as m; m.app; print(*gc.get_threshold(), gc.get_freeze_count())"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    *thresholds, frozen = map(int, out.stdout.split())
    assert tuple(thresholds) == relay_app.GC_THRESHOLDS
    assert frozen > 10_000  # the modules and the app built at start-up are out of every later scan


def test_building_a_relay_in_a_test_process_leaves_its_collector_alone():
    assert gc.get_threshold() != relay_app.GC_THRESHOLDS
    assert relay_app.GC_THRESHOLDS[0] >= 10_000
