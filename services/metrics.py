"""Every Prometheus metric Hearth exports, defined here and nowhere else (docs/operations.md, "Metrics").

Adding a counter is one line below and one ``.inc()`` where the thing happens.
Labels are bounded sets (a route template, a job kind, a status), never ids.

Every process (gunicorn workers, relay, worker, beat) writes its samples into
``PROMETHEUS_MULTIPROC_DIR`` when that is set (``hearth run``, the Procfile and
ops/gunicorn.conf.py set it before anything imports this module); the
``metrics`` process (``ops/metrics_server.py``) reads them all and serves
``/metrics``. Without it, samples stay in the process (tests, commands).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds: an API request should answer in milliseconds; above a second something waits.
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds: jobs range from a 50 ms email to a minutes-long export or index rebuild.
_JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

HTTP_REQUESTS = Counter("hearth_http_requests_total", "API requests answered.", ("route", "method", "status"))
HTTP_DURATION = Histogram(
    "hearth_http_request_duration_seconds",
    "Time to answer an API request.",
    ("route", "method", "status"),
    buckets=_HTTP_BUCKETS,
)
JOBS = Counter("hearth_jobs_total", "Job runs ended, by kind and outcome.", ("kind", "outcome"))
JOB_DURATION = Histogram("hearth_job_duration_seconds", "Time a job run took.", ("kind",), buckets=_JOB_BUCKETS)
JOB_SWEEPS = Counter("hearth_job_sweeps_total", "Jobs the beat sweep requeued or expired.", ("action",))
RELAY_CONNECTIONS = Gauge("hearth_relay_connections", "Open websocket connections.", multiprocess_mode="livesum")
RELAY_EVENTS = Counter("hearth_relay_events_total", "Events the relay handed to connections.")
RELAY_SLOW_CLOSES = Counter("hearth_relay_slow_client_closes_total", "Connections closed for not reading (4429).")
UPLOADS_SCANNED = Counter("hearth_uploads_scanned_total", "Upload scans ended, by verdict.", ("result",))
NOTIFICATION_DELIVERIES = Counter(
    "hearth_notification_deliveries_total", "Notification sends settled, by channel and status.", ("channel", "status")
)
ESCROW_TRANSITIONS = Counter("hearth_escrow_transitions_total", "Escrows moved to a status.", ("to",))
PAYMENTS = Counter("hearth_payments_total", "Payments moved to a status, by kind.", ("kind", "status"))

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_DOMAIN_COUNTERS = {"escrow.transition": ESCROW_TRANSITIONS, "payment.status": PAYMENTS}


# The labelled children per (route, method, status class): ``labels()`` costs more than the update.
_http_children: dict[tuple[str | None, str, int], tuple[Any, Any]] = {}


def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    """One answered API request: ``route`` is the route template (None: no route matched)."""
    # Keyed by bounded values only: a client's made-up method is OTHER before it is a key.
    key = (route, method if method in _METHODS else "OTHER", status // 100)
    children = _http_children.get(key)
    if children is None:
        labels = (route or "unmatched", key[1], f"{key[2]}xx")
        children = _http_children[key] = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
    children[0].inc()
    children[1].observe(seconds)


def observe_job(kind: str, outcome: str, seconds: float) -> None:
    """One job run ended: ``outcome`` is succeeded, failed, cancelled, retried or lost (its lease)."""
    JOBS.labels(kind, outcome).inc()
    JOB_DURATION.labels(kind).observe(seconds)


def count_domain_event(name: str, **labels: str) -> None:
    """The listener the composition roots give ``models.domain_events``: counts escrow and payment moves."""
    counter = _DOMAIN_COUNTERS.get(name)
    if counter is not None:
        counter.labels(**labels).inc()


def multiprocess_directory() -> pathlib.Path | None:
    value = os.environ.get(MULTIPROC_ENV)
    return pathlib.Path(value) if value else None


def reset_directory(path: pathlib.Path) -> pathlib.Path:
    """Create ``path`` or empty it of the previous run's samples: call before the host's processes start."""
    path.mkdir(parents=True, exist_ok=True)
    for sample_file in path.glob("*.db"):
        sample_file.unlink(missing_ok=True)
    return path


def process_exited(pid: int) -> None:
    """A process writing samples ended (a gunicorn worker): its live gauges stop counting."""
    if multiprocess_directory() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


__all__ = [
    "ESCROW_TRANSITIONS",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "JOBS",
    "JOB_DURATION",
    "JOB_SWEEPS",
    "MULTIPROC_ENV",
    "NOTIFICATION_DELIVERIES",
    "PAYMENTS",
    "RELAY_CONNECTIONS",
    "RELAY_EVENTS",
    "RELAY_SLOW_CLOSES",
    "UPLOADS_SCANNED",
    "count_domain_event",
    "multiprocess_directory",
    "observe_job",
    "observe_request",
    "process_exited",
    "reset_directory",
]
