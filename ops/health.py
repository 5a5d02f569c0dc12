"""``hearth health PROCESS``: is this process alive? The image's HEALTHCHECK for every Hearth process.

Each check asks the process itself, on the container's loopback, never a dependency (a database
outage must not make every container restart):

* ``web``, ``relay``, ``metrics``, ``flower``: their own HTTP liveness route (``/healthz``, Flower's
  ``/healthcheck``) at the port of ``WEB_BIND`` / ``RELAY_BIND`` / ``METRICS_BIND`` / ``FLOWER_BIND``.
* ``worker``: the worker of this host answers a broadcast ping (``celery inspect ping``), which
  needs the broker but shows the consumer loop still runs.
* ``beat``: its schedule file (``<HEARTH_VAR_DIR>/celerybeat-schedule``) was written recently; beat
  saves it at least every few minutes while it ticks.

Exit status 0 when alive, 1 with one line on stderr otherwise.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
import urllib.error
import urllib.request

from settings import Settings

PROCESSES = ("web", "relay", "worker", "beat", "flower", "metrics")
TIMEOUT = 4.0
# Celery beat saves its schedule every 3 minutes (beat_sync_every / sync_every); allow three misses.
BEAT_STALE_AFTER = 10 * 60


class Unhealthy(Exception):
    pass


def add_commands(commands) -> None:
    health = commands.add_parser("health", help="exit 0 when this host's PROCESS is alive (container healthchecks)")
    health.add_argument("process", choices=PROCESSES)
    health.set_defaults(handler=health_command)


def _loopback(bind: str) -> str:
    port = bind.rpartition(":")[2]
    return f"127.0.0.1:{port}"


def _http(url: str) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:  # noqa: S310 - our own loopback address
            if answer.status >= 400:
                raise Unhealthy(f"{url} answered {answer.status}")
    except (urllib.error.URLError, OSError) as exc:
        raise Unhealthy(f"{url}: {exc}") from None


def check(process: str, settings: Settings) -> str:
    """What was found alive; raises ``Unhealthy`` saying what was not."""
    if process == "web":
        url = f"http://{_loopback(settings.web_bind)}/healthz"
    elif process == "relay":
        url = f"http://{_loopback(settings.relay_bind)}/healthz"
    elif process == "flower":
        url = f"http://{_loopback(settings.flower_bind)}/healthcheck"
    elif process == "metrics":
        # METRICS_BIND belongs to the metrics process (its default is the Procfile's).
        url = f"http://{_loopback(getattr(settings, 'metrics_bind', '127.0.0.1:9464'))}/healthz"
    elif process == "worker":
        return _worker()
    else:
        return _beat(settings)
    _http(url)
    return url


def _worker() -> str:
    from tasks.app import app

    node = f"celery@{socket.gethostname()}"
    answers = app.control.ping(destination=[node], timeout=TIMEOUT)
    if not any(node in answer for answer in answers):
        raise Unhealthy(f"{node} did not answer a ping")
    return node


def _beat(settings: Settings) -> str:
    files = sorted(settings.var_dir.glob("celerybeat-schedule*"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise Unhealthy(f"no beat schedule file in {settings.var_dir}")
    age = time.time() - files[-1].stat().st_mtime
    if age > BEAT_STALE_AFTER:
        raise Unhealthy(f"{files[-1]} was last written {age:.0f}s ago")
    return str(files[-1])


def health_command(args: argparse.Namespace) -> int:
    try:
        check(args.process, Settings.from_env())
    except Unhealthy as exc:
        print(f"hearth: {args.process} is not healthy: {exc}", file=sys.stderr)
        return 1
    return 0
