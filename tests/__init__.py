"""Hearth's tests.

Metrics run in multiprocess mode here as in every Hearth process (services/metrics.py): the mode is
chosen when prometheus_client is first imported, so it is set here, before any test module or
conftest imports it. Each test process (each xdist worker too) writes into a directory of its own,
removed when it exits.
"""

import atexit
import os
import shutil
import sys
import tempfile

if os.environ.get("HEARTH_TEST_METRICS_PID") != str(os.getpid()) and "prometheus_client" not in sys.modules:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="hearth-test-metrics-")
    os.environ["HEARTH_TEST_METRICS_PID"] = str(os.getpid())
    atexit.register(shutil.rmtree, os.environ["PROMETHEUS_MULTIPROC_DIR"], True)
