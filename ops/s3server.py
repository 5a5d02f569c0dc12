"""An S3-compatible server on loopback for tests: moto in server mode.

``start_s3_server(home)`` runs ``moto_server -H 127.0.0.1 -p PORT`` (from the
``moto[server]`` test dependency in the virtualenv) and waits until it answers.
Its data lives in memory: stopping it forgets every bucket.
"""
from __future__ import annotations

import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

START_TIMEOUT = 30.0


class S3ServerError(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    log_path: pathlib.Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_s3_server(home: pathlib.Path) -> S3Server:
    home = pathlib.Path(home)
    home.mkdir(parents=True, exist_ok=True)
    binary = pathlib.Path(sys.executable).parent / "moto_server"
    if not binary.exists():
        raise S3ServerError(f"{binary} is missing: install the locked dependencies (make venv)")
    port = _free_port()
    log_path = home / "moto.log"
    log = open(log_path, "ab")
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise S3ServerError(f"moto_server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=1):
                return S3Server(endpoint, process, log_path)
        except OSError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise S3ServerError(f"moto_server did not answer within {START_TIMEOUT:.0f} s")
