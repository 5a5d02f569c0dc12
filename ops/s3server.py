"""An S3-compatible server on loopback for tests: moto's threaded server, in this process.

``start_s3_server()`` serves moto (the ``moto[server]`` dev dependency) from a thread of
the calling process on a free ``127.0.0.1`` port; other processes (pytest, workers,
gunicorn) reach it at ``endpoint``. It lives as long as that process, or until
``stop()``. Its data lives in memory: stopping it forgets every bucket.
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

START_TIMEOUT = 30.0


class S3ServerError(Exception):
    pass


@dataclass
class S3Server:
    endpoint: str
    _server: Any

    def stop(self) -> None:
        self._server.stop()


def start_s3_server() -> S3Server:
    """Serve moto's S3 on a free loopback port from a daemon thread; returns once it answers."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise S3ServerError(f"moto is missing ({exc}): install the dev dependencies (make venv)") from None
    # werkzeug would log every request of the test run to stderr.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    # start() waits for the socket without a limit; a failure to bind would leave it waiting for ever.
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(START_TIMEOUT)
    if starter.is_alive():
        raise S3ServerError(f"moto's threaded server did not start within {START_TIMEOUT:.0f} s")
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=START_TIMEOUT):  # noqa: S310 (our http:// endpoint)
            pass
    except OSError as exc:
        server.stop()
        raise S3ServerError(f"moto's threaded server at {endpoint} does not answer: {exc}") from None
    return S3Server(endpoint, server)
