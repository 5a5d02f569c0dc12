"""Gunicorn settings for the web process: ``gunicorn -c ops/gunicorn.conf.py api.wsgi:app``.

The bind address comes from settings (``WEB_BIND``). Everything else is a default
that ``GUNICORN_CMD_ARGS`` overrides, e.g. ``GUNICORN_CMD_ARGS="--workers=4"``;
outside production a ``--bind`` beyond loopback is refused there too.
Nothing here touches the database: the app connects lazily in each worker, so
forked workers never share a socket.
"""

import os
import sys

from settings import Settings, SettingsError, is_loopback_bind

try:
    _settings = Settings.from_env()
except SettingsError as exc:
    # SystemExit passes through gunicorn's config loader without a traceback.
    print(f"hearth web: {exc}", file=sys.stderr)
    sys.exit(1)

bind = [_settings.web_bind]
proc_name = "hearth-web"

# Two processes per core, four threads each: requests mostly wait on Redis and
# PostgreSQL, and with one process per core a core idles while its process's
# threads wait and hand the GIL around (GET /v1/me on two cores: ~4,400 req/s
# with 2 workers, ~5,600-6,000 with 4); threads keep a slow client from holding
# a whole process. Override with GUNICORN_CMD_ARGS="--workers=N".
workers = 2 * (os.cpu_count() or 1)
# gunicorn's threaded worker, answering an over-long request line as problem+json.
worker_class = "ops.gunicorn_worker.ProblemThreadWorker"
threads = 4

# The longest request line gunicorn takes (its default, 4094, refused a 100-point
# search polygon: with numbers as JavaScript prints them and encodeURIComponent's
# %20 and %2C it is ~4.1 KB, ~4.3 KB with a few more filters). No limit could
# admit every query the schemas allow: 20 features of 60 four-byte characters
# alone percent-encode to 14 KB, and gunicorn allows nothing above 8190 but 0,
# which would buffer a request line of any size in memory. So the limit is the
# highest gunicorn has, and a longer line is answered 414 problem+json by the
# worker above; the OpenAPI document lists 414 on every operation with parameters.
limit_request_line = 8190

# A request that runs longer than this is a bug: slow work goes to Celery.
timeout = 30
graceful_timeout = 10
keepalive = 5
# Recycle workers now and then so a slow leak never becomes an outage.
# Recycling a worker costs a fresh import of the app (~0.3 s of CPU); at a few
# thousand requests a second a low limit recycles every second or two.
max_requests = 200000
max_requests_jitter = 20000
# The app connects to nothing at import (database and Redis connect lazily in
# each worker), so it is safe to build it once in the master and fork.
preload_app = True

# The app writes one JSON log line per request itself.
accesslog = None
errorlog = "-"
loglevel = "info"

# Heartbeat files on tmpfs: a disk-backed /tmp can stall workers under I/O load.
_TMPFS = "/dev/shm"  # noqa: S108 - gunicorn makes its own unique files in it (mkstemp), as its docs advise
if os.path.isdir(_TMPFS):
    worker_tmp_dir = _TMPFS

# The control socket defaults to one path per user, which two gunicorns on one
# machine (dev server beside tests) would fight over; nothing here uses it.
control_socket_disable = True


# Multiprocess metrics (services/metrics.py): the directory exists before a worker writes into it,
# and a worker that exits stops counting in the live gauges.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def child_exit(server, worker):
    from services.metrics import process_exited

    process_exited(worker.pid)


def on_starting(server):
    # WEB_BIND was checked by settings; a --bind in GUNICORN_CMD_ARGS or argv replaces it.
    wide = [bind for bind in server.cfg.bind if not is_loopback_bind(bind)]
    if wide and not _settings.production:
        print(
            f"hearth web: --bind {', '.join(wide)} listens beyond this machine; outside "
            "HEARTH_ENV=production Hearth listens on loopback only (127.0.0.1, ::1, localhost)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)
