"""What every embedded development server shares: who owns it, and stopping what this process owns.

A server is stopped by the process that owns it: the one that started it, or one
that found it running after its owner died (a crashed ``hearth run``). Ownership
is a pid file next to the server's data, claimed under a file lock; ``stop_all()``
stops what this process owns, in reverse start order, and also runs at
interpreter exit. The servers themselves are in ``ops/devservices.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pathlib
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from ops import stack_record

START_TIMEOUT = 30.0


class ServiceError(Exception):
    """An embedded server could not be started, reached or stopped; the message says why."""


def reachable(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class EmbeddedServer:
    """A server started (or adopted) by this process; ``stop()`` shuts it down."""

    name: str
    url: str
    owned: bool
    _stop: Callable[[], None] = field(repr=False)

    def stop(self) -> None:
        if self.owned:
            self._stop()
            self.owned = False


# Servers this process owns, in start order; stopped in reverse.
_owned: list[EmbeddedServer] = []


def stop_all() -> None:
    """Stop every embedded server this process owns (idempotent)."""
    problems = []
    while _owned:
        server = _owned.pop()
        try:
            server.stop()
        except Exception as exc:  # noqa: BLE001 - whatever one server does, keep stopping the others
            problems.append(f"{server.name}: {exc}")
    if problems:
        raise ServiceError("could not stop: " + "; ".join(problems))


def _stop_all_at_exit() -> None:
    try:
        stop_all()
    except ServiceError as exc:
        print(f"hearth: {exc}", file=sys.stderr)


atexit.register(_stop_all_at_exit)


# --------------------------------------------------------------------------- ownership


@contextlib.contextmanager
def locked(path: pathlib.Path):
    """Serialise start/adopt/stop of one server between processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def claim(owner_file: pathlib.Path) -> bool:
    """Record this process as the server's owner unless a live process already is."""
    try:
        pid = int(owner_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        pid = 0
    if pid and pid != os.getpid() and stack_record.alive(pid):
        return False
    owner_file.write_text(f"{os.getpid()}\n")
    return True


def release(owner_file: pathlib.Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if owner_file.read_text().strip() == str(os.getpid()):
            owner_file.unlink()


def register(server: EmbeddedServer) -> EmbeddedServer:
    if server.owned:
        _owned.append(server)
    return server


def var_dir(settings) -> pathlib.Path:
    return pathlib.Path(settings.var_dir).resolve()


def log_tail(path: pathlib.Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n--- " + str(path) + " ---\n" + "\n".join(text) if text else ""
