"""A private clamd for tests and development, with a signature database we generate.

``start_clamd(home)`` runs Debian's ``clamd`` in the foreground under ``home``
(config, socket, pid, log, temporary files) with a database of one signature:
the EICAR test string, matched anywhere in a file (so EICAR hidden behind a
JPEG header is caught too). Detections are reported as
``Eicar-Test-Signature.UNOFFICIAL``. The database is written at start from the
hex in ``ops/testdata/eicar.hex``: the repository never holds the EICAR string
itself, so no scanner quarantines a checkout.

No internet means no ``freshclam``: this database is for tests and a local
``hearth run`` only; production points ``CLAMD_URL`` at a clamd with the real
signatures.

When ``clamd`` is missing, ``ensure_installed()`` runs
``apt-get update && apt-get install -y clamav-daemon`` once (as root; the
project's machines are Debian).

    python -m ops.clamd [--home DIR]    # run one in the foreground (Ctrl-C stops it)
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from ops.debian import InstallError, apt_install
from settings import ROOT

EICAR_HEX_FILE = ROOT / "ops" / "testdata" / "eicar.hex"
SIGNATURE_NAME = "Eicar-Test-Signature"
DETECTED_AS = f"{SIGNATURE_NAME}.UNOFFICIAL"
# Above every upload cap, so clamd never refuses a file Hearth accepted.
STREAM_MAX = "200M"
START_TIMEOUT = 30.0
# `python -m ops.clamd` stops its clamd on each of these.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ClamdError(Exception):
    """clamd could not be installed, started or stopped; the message says why."""


def eicar_bytes() -> bytes:
    """The 68-byte EICAR anti-virus test string (harmless by design), decoded from its hex."""
    return bytes.fromhex(EICAR_HEX_FILE.read_text().strip())


def clamd_binary() -> str | None:
    return shutil.which("clamd") or next(
        (str(p) for p in (pathlib.Path("/usr/sbin/clamd"), pathlib.Path("/usr/local/sbin/clamd")) if p.exists()), None
    )


def ensure_installed(log=print) -> str:
    """The path of ``clamd``, installing Debian's ``clamav-daemon`` first when it is missing."""
    found = clamd_binary()
    if found:
        return found
    log("clamd not found: installing clamav-daemon with apt-get (once per machine)")
    try:
        apt_install("clamav-daemon")
    except InstallError as exc:
        raise ClamdError(str(exc)) from None
    found = clamd_binary()
    if not found:
        raise ClamdError("clamav-daemon was installed but clamd is still not on PATH")
    return found


def write_database(directory: pathlib.Path) -> pathlib.Path:
    """A database directory holding the one test signature (``.ndb``: name, any target, any offset, hex)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hearth-test.ndb"
    path.write_text(f"{SIGNATURE_NAME}:0:*:{eicar_bytes().hex()}\n")
    return path


def write_config(home: pathlib.Path, stream_max: str = STREAM_MAX) -> pathlib.Path:
    """``clamd.conf`` for a foreground clamd on a unix socket under ``home``, scanning up to ``stream_max``."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    write_database(home / "db")
    conf = home / "clamd.conf"
    conf.write_text(
        "\n".join(
            [
                f"DatabaseDirectory {home / 'db'}",
                f"LocalSocket {home / 'clamd.sock'}",
                "LocalSocketMode 660",
                "FixStaleSocket yes",
                "Foreground yes",
                f"PidFile {home / 'clamd.pid'}",
                f"LogFile {home / 'clamd.log'}",
                f"TemporaryDirectory {home / 'tmp'}",
                # Debian's default stream cap is 25 MB, below the document cap.
                f"StreamMaxLength {stream_max}",
                f"MaxFileSize {stream_max}",
                f"MaxScanSize {stream_max}",
                "MaxThreads 4",
                "ReadTimeout 30",
                "CommandReadTimeout 30",
                "SelfCheck 0",
                "",
            ]
        )
    )
    return conf


def _ping(socket_path: pathlib.Path, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(b"zPING\0")
            return sock.recv(16).startswith(b"PONG")
    except OSError:
        return False


@dataclass
class ClamdServer:
    """A clamd this process started; ``stop()`` and ``start()`` may be called again (tests do)."""

    home: pathlib.Path
    binary: str
    stream_max: str = STREAM_MAX
    process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> pathlib.Path:
        return self.home / "clamd.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout: float = START_TIMEOUT) -> ClamdServer:
        conf = write_config(self.home, self.stream_max)
        # Its own session: a Ctrl-C in the terminal reaches the test runner, which stops it.
        with open(self.home / "clamd.out", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--config-file", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ClamdError(f"clamd exited with {self.process.returncode}:\n{self.tail()}")
            if _ping(self.socket_path):
                return self
            time.sleep(0.05)
        self.stop()
        raise ClamdError(f"clamd did not answer within {timeout:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        text = []
        for name in ("clamd.log", "clamd.out"):
            with contextlib.suppress(OSError):
                text += (self.home / name).read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)


def start_clamd(home: pathlib.Path, log=print) -> ClamdServer:
    """Install clamd if needed, then start one under ``home`` and wait until it answers PING."""
    home = pathlib.Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return ClamdServer(home, ensure_installed(log)).start()


def main(argv: list[str] | None = None) -> int:
    from settings import Settings

    parser = argparse.ArgumentParser(prog="python -m ops.clamd", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home",
        type=pathlib.Path,
        default=None,
        help="where its files live (default: <var_dir>/clamd, the development CLAMD_URL)",
    )
    args = parser.parse_args(argv)
    home = args.home or pathlib.Path(Settings.from_env().var_dir) / "clamd"
    # clamd runs in a session of its own, so no signal sent to us reaches it: whatever
    # stops this process (Ctrl-C, `kill`, a closed terminal) must stop clamd first.
    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = start_clamd(home)
    except ClamdError as exc:
        print(f"clamd: {exc}", file=sys.stderr)
        return 1
    print(f"clamd ready at {server.url} (Ctrl-C stops it)", flush=True)
    try:
        while server.alive() and not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
