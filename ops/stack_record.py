"""Which servers the running ``hearth run`` uses, for the ``hearth`` commands run beside it.

``hearth run`` resolves PostgreSQL, Redis and clamd (configured or embedded),
writes their URLs with its pid to ``<var_dir>/stack.json`` (mode 0600: URLs may
carry passwords) and removes the file when it stops. A record whose process is
gone is ignored, so a crashed stack never misdirects a later command.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib


def alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stack_file(settings) -> pathlib.Path:
    return pathlib.Path(settings.var_dir).resolve() / "stack.json"


def record_stack(settings, urls: dict[str, str]) -> None:
    """Record, for the ``hearth`` commands run meanwhile, which servers this process's stack uses."""
    path = _stack_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    # Owner-only: the URLs may carry passwords.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"pid": os.getpid(), **urls}, handle)
    os.replace(tmp, path)


def forget_stack(settings) -> None:
    """Remove this process's record (another process's is left alone)."""
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        path = _stack_file(settings)
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def running_stack(settings) -> dict[str, str]:
    """The server URLs of the ``hearth run`` using ``<var_dir>``, or ``{}`` when none runs."""
    try:
        record = json.loads(_stack_file(settings).read_text())
        pid = int(record.pop("pid"))
    except (FileNotFoundError, ValueError, KeyError, TypeError, OSError):
        return {}
    if pid != os.getpid() and not alive(pid):
        return {}
    return {name: value for name, value in record.items() if isinstance(value, str)}
