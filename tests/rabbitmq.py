"""A RabbitMQ virtual host of its own for a test: the broker at 127.0.0.1:5672 (user guest), shared by all.

Each test gets a fresh vhost (``rabbitmqctl add_vhost``, root on the test machine), so its queues,
exchanges and messages are its own and go when it ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator

import pytest

HOST, PORT = "127.0.0.1", 5672


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, *args], check=True, capture_output=True, timeout=60)


def _listening() -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, PORT), timeout=1):
        return True
    return False


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """``amqp://`` URL of a new, empty vhost; deleted (with everything in it) afterwards."""
    if not _listening() or not (shutil.which("rabbitmqctl") or os.path.exists("/usr/sbin/rabbitmqctl")):
        pytest.skip(f"no RabbitMQ at {HOST}:{PORT} with rabbitmqctl")
    name = f"hearth_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{HOST}:{PORT}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)
