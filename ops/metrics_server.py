"""The ``metrics`` process (``hearth metrics``): ``/metrics`` for every Hearth process of its host.

Web workers, relay, worker and beat write their samples into
``PROMETHEUS_MULTIPROC_DIR`` (``services.metrics``); this process merges them
(``MultiProcessCollector``) and adds the gauges read at each scrape from the
systems of record: how many messages wait in each Celery queue, how long the
oldest due job has waited, and how far the search index lags. It listens on
``METRICS_BIND`` (loopback by default), never on the API's port, and answers
``/metrics`` and ``/healthz`` only.
"""

from __future__ import annotations

import logging
import socketserver
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from services import metrics
from settings import Settings

log = logging.getLogger("hearth.metrics")
QUEUE_DEPTH = "hearth_queue_depth"
OLDEST_JOB_AGE = "hearth_queue_oldest_job_age_seconds"
SEARCH_LAG = "hearth_search_index_lag_seconds"
SCRAPE_TIME_GAUGES = (QUEUE_DEPTH, OLDEST_JOB_AGE, SEARCH_LAG)

# Jobs queued and due (created, enqueued again, or past a retry's backoff): how long the oldest has waited.
_OLDEST_DUE_JOB = """
SELECT queue, EXTRACT(EPOCH FROM now() - min(due))
FROM (
    SELECT queue, GREATEST(COALESCE(enqueued_at, created_at), COALESCE(run_after, created_at)) AS due
    FROM jobs WHERE status = 'queued' AND cancel_requested_at IS NULL
) AS waiting
WHERE due <= now()
GROUP BY queue
"""


class ScrapeTimeGauges:
    """The gauges read when Prometheus scrapes: queue depth, oldest queued job, search index lag.

    ``depths()`` is ``CeleryJobQueue.depths`` (``{queue: messages}``, empty when the
    broker cannot tell, as with AMQP); a source that is down leaves its gauges out
    of that scrape (Prometheus then sees them as absent, which an alert can catch)
    rather than failing the whole page.
    """

    def __init__(self, queues: Iterable[str], depths: Callable[[], dict[str, int]]):
        self.queues = tuple(queues)
        self.depths = depths

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(QUEUE_DEPTH, "Messages waiting in each Celery queue.", labels=["queue"])
        for queue, waiting in sorted(self.depths().items()):
            depth.add_metric([queue], waiting)
        yield depth
        try:
            oldest, lag = self._from_database()
        except Exception:
            log.warning("could not read job and search gauges from the database", exc_info=True)
            return
        age = GaugeMetricFamily(
            OLDEST_JOB_AGE,
            "How long the oldest due job of each queue has waited to start.",
            labels=["queue"],
        )
        for queue in sorted(set(self.queues) | set(oldest)):
            age.add_metric([queue], oldest.get(queue, 0.0))
        yield age
        yield GaugeMetricFamily(SEARCH_LAG, "Age of the oldest listing change not yet in the search index.", lag)

    @staticmethod
    def _from_database() -> tuple[dict[str, float], float]:
        from models.db import connection, db
        from models.search.queue import lag

        with connection():
            oldest = {queue: float(age) for queue, age in db.execute_sql(_OLDEST_DUE_JOB).fetchall()}
            index_lag = lag()["oldest_dirty_age_seconds"] or 0.0
        return oldest, float(index_lag)


class ContainerSamples:
    """The samples of every process writing into ``directory`` or into one of its subdirectories.

    On one host every process shares the directory itself. Where each process runs in a container
    of its own (docker-compose.yml), process ids repeat across containers, so each container writes
    into a subdirectory of one shared volume (``PROMETHEUS_MULTIPROC_DIR=/metrics/<service>``) and
    this process, pointed at the volume's root, merges them all.
    """

    def __init__(self, directory, merge: Callable[..., Iterable[Metric]]):
        self.directory = directory
        self.merge = merge

    def collect(self) -> Iterable[Metric]:
        files = sorted(str(path) for path in (*self.directory.glob("*.db"), *self.directory.glob("*/*.db")))
        return self.merge(files, accumulate=True)


def build_registry(settings: Settings, *, depths: Callable[[], dict[str, int]] | None = None) -> CollectorRegistry:
    """Every process's samples (from ``PROMETHEUS_MULTIPROC_DIR``, when set) and the scrape-time gauges."""
    import celeryconfig
    from services.jobqueue import CeleryJobQueue

    registry = CollectorRegistry()
    directory = metrics.multiprocess_directory()
    if directory is not None:
        from prometheus_client import multiprocess

        directory.mkdir(parents=True, exist_ok=True)
        registry.register(ContainerSamples(directory, multiprocess.MultiProcessCollector.merge))
    if depths is None:
        depths = CeleryJobQueue.from_settings(settings).depths
    registry.register(ScrapeTimeGauges(celeryconfig.QUEUES, depths))
    return registry


def metrics_app(registry: CollectorRegistry):
    """The WSGI app: ``GET /metrics`` (Prometheus text format), ``GET /healthz``; 404 elsewhere."""

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"method not allowed\n"]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [body]

    return app


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass  # a scrape every few seconds is not worth a log line


def serve(settings: Settings) -> None:
    """Serve ``/metrics`` on ``METRICS_BIND`` until interrupted."""
    from models.db import init_database
    from services.logging import configure_logging

    configure_logging(settings, "metrics")
    init_database(settings)
    host, _, port = settings.metrics_bind.rpartition(":")
    server = make_server(
        host.strip("[]"), int(port), metrics_app(build_registry(settings)), _Server, handler_class=_QuietHandler
    )
    log.info("serving /metrics", extra={"bind": settings.metrics_bind})
    try:
        server.serve_forever()
    finally:
        server.server_close()
