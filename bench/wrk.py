"""Running wrk: installing it when missing, describing a load in Lua, reading its figures back.

The Lua script's ``done()`` hook prints one line ``BENCH_RESULT {json}`` with
the request count, duration, latency percentiles (microseconds) and error
counts, so nothing depends on wrk's human-readable summary.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

RESULT_MARK = "BENCH_RESULT "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


class WrkError(Exception):
    """wrk is missing and cannot be installed, or a load did not produce figures."""


@dataclass(frozen=True)
class Load:
    """What every connection sends, again and again."""

    path: str = "/"
    method: str = "GET"
    headers: dict = field(default_factory=dict)
    body: str | None = None

    def script(self) -> str:
        lines = [f"wrk.method = {_lua_string(self.method)}", f"wrk.path = {_lua_string(self.path)}"]
        for name, value in self.headers.items():
            lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
        if self.body is not None:
            lines.append(f"wrk.body = {_lua_string(self.body)}")
        return "\n".join(lines) + "\n" + _DONE


@dataclass(frozen=True)
class Result:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict
    cpu_s: float = 0.0  # wrk's own CPU time (it shares the machine with the server)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        """Failed requests: refused/broken connections, timeouts and answers outside 2xx/3xx."""
        return sum(self.errors.values())


def _lua_string(text: str) -> str:
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    # A long bracket drops a newline right after the opening bracket; start with one so none is lost.
    return f"[{eq}[\n{text}]{eq}]"


def ensure_installed(log=print) -> str:
    """Return wrk's path, installing Debian's package first if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise WrkError("wrk is not installed and there is no apt-get to install it")
    log("wrk is missing: apt-get install -y -qq wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    installed = subprocess.run(["dpkg", "-s", "wrk"], capture_output=True, check=False).returncode == 0
    if not installed:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise WrkError("apt-get installed wrk but it is not on PATH")
    return found


def version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "unknown"


def run(
    wrk: str, base_url: str, load: Load, *, duration: str, threads: int, connections: int, timeout: str = "10s"
) -> Result:
    """Run one load against ``base_url`` and return its figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(load.script())
        script = pathlib.Path(fh.name)
    try:
        argv = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}",
            f"--timeout={timeout}",
            "-s",
            str(script),
            base_url + load.path,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        script.unlink(missing_ok=True)
    for line in out.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            data = json.loads(line[len(RESULT_MARK) :])
            return Result(
                requests=data["requests"],
                duration_s=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p90_ms=data["p90_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                max_ms=data["max_us"] / 1000,
                mean_ms=data["mean_us"] / 1000,
                errors=data["errors"],
                cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            )
    raise WrkError(f"wrk printed no result (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
