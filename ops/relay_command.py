"""The relay's uvicorn command line as the Procfile's ``relay:`` line has it.

Tests and benchmarks start the relay on a port of their own; reading its flags
from the Procfile keeps them on exactly the flags production runs with.
"""

from __future__ import annotations

import pathlib
import shlex

from ops.supervisor import PROCFILE, ProcfileError, read_procfile


def relay_argv(uvicorn: str, host: str, port: int, *extra: str, procfile: pathlib.Path = PROCFILE) -> list[str]:
    """``uvicorn relay.app:app`` with the Procfile's flags, bound to ``host:port``, then ``extra``.

    Uvicorn takes the last value of a repeated option, so ``extra`` may override
    a Procfile flag (``--timeout-graceful-shutdown 5``).
    """
    command = read_procfile(procfile).get("relay", "")
    _, found, tail = command.partition("exec uvicorn ")
    if not found:
        raise ProcfileError(f"{procfile}: the relay line does not exec uvicorn")
    words = shlex.split(tail)
    argv = [uvicorn, words[0]]
    skip = False
    for word in words[1:]:
        if skip:
            skip = False
        elif word in ("--host", "--port"):
            skip = True
        else:
            argv.append(word)
    return [*argv, "--host", host, "--port", str(port), *extra]
