"""Load-generating client processes: started with a JSON config, driven over stdin and stdout.

A client module (``bench/relay_client.py``, ``bench/messaging_client.py``) runs as
``python -m <module> client CONFIG.json``: it opens its connections, prints ``READY <n>``,
then answers each command line on stdin with one JSON line. ``client_process`` starts one
and stops it afterwards; ``ClientProcess`` (or a subclass that knows the module's commands)
talks to it.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import resource
import selectors
import subprocess
import sys

from bench import servers


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (one descriptor per socket), up to the hard limit.

    Processes started afterwards inherit it: the benchmark raises it before it starts the relay.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


class ClientProcess:
    def __init__(self, popen):
        self.popen = popen
        self.ready = 0

    def wait_ready(self, timeout: float) -> None:
        line = readline(self.popen, timeout)
        if not line.startswith("READY"):
            raise RuntimeError(f"the client process did not get ready: {line!r}")
        self.ready = int(line.split()[1])

    def finish(self, expected: int) -> dict:
        self.popen.stdin.write(f"STOP {expected}\n")
        self.popen.stdin.flush()
        return json.loads(readline(self.popen, 60))


def readline(popen, timeout: float) -> str:
    """The client's next line of output, without its line break; an error after ``timeout`` seconds."""
    with selectors.DefaultSelector() as sel:
        sel.register(popen.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError("the client process did not answer in time")
    line = popen.stdout.readline()
    if not line:
        raise RuntimeError("the client process ended early")
    return line.strip()


@contextlib.contextmanager
def client_process(module: str, directory: pathlib.Path, name: str, config: dict, kind=None):
    """A load-generating client (``python -m <module> client <config>``), ready; stopped afterwards.

    ``kind``: the ``ClientProcess`` subclass that talks to it.
    """
    path = directory / f"{name}.json"
    path.write_text(json.dumps(config))
    with open(directory / f"{name}.log", "ab") as err:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, "client", str(path)],
            cwd=servers.ROOT,
            env=servers.environment({}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        client = (kind or ClientProcess)(popen)
        client.wait_ready(180)
        yield client
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
