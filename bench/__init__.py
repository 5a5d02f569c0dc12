"""Hearth's benchmarks: ``python -m bench`` runs every default one, ``python -m bench NAME`` one.

A benchmark is a function registered with ``@benchmark(NAME)``. It gets a
``Run`` (durations, load settings, where to put files) and returns ``Row``s.
Each row may name a ``baseline`` row measured in the same call, and the
report prints the ratio between their throughputs; absolute figures drift
from machine to machine, ratios measured in one run do not drift as much.

To add a benchmark, write a module with registered functions and add its name
to ``MODULES``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

# Modules whose import registers benchmarks, in the order ``python -m bench`` runs them.
MODULES = (
    "bench.http",
    "bench.jobs",
    "bench.relay",
    "bench.messaging",
    "bench.notifications",
    "bench.uploads",
    "bench.search",
    "bench.money",
    "bench.imports",
)


@dataclass
class Row:
    """One measured load. Latencies are milliseconds; ``cpu_us_per_request`` is the server's CPU."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    baseline: str | None = None
    requests: int = 0
    errors: int = 0
    cpu_us_per_request: float | None = None
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """``row`` must reach ``minimum`` times the throughput of ``baseline``."""

    row: str
    baseline: str
    minimum: float


@dataclass
class Benchmark:
    name: str
    run: Callable[[Run], list[Row]]
    summary: str
    targets: tuple[Target, ...] = ()
    default: bool = True


@dataclass
class Run:
    """Settings shared by every benchmark of one ``python -m bench`` invocation."""

    duration: str = "10s"
    warmup: str = "1s"
    threads: int = 2
    connections: int = 32
    repeats: int = 3
    log: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ=None, log=print) -> Run:
        environ = os.environ if environ is None else environ
        return cls(
            duration=_seconds(environ.get("BENCH_DURATION", "10s")),
            warmup=_seconds(environ.get("BENCH_WARMUP", "1s")),
            threads=int(environ.get("BENCH_THREADS", "2")),
            connections=int(environ.get("BENCH_CONNECTIONS", "32")),
            repeats=int(environ.get("BENCH_REPEATS", "3")),
            log=log,
        )

    def note(self, text: str) -> None:
        """A line the report repeats under the table (and keeps in the JSON)."""
        if text not in self.notes:
            self.notes.append(text)
        self.log(text)


def _seconds(text: str) -> str:
    """Accept ``10``, ``10s`` or ``1m`` and return what wrk's ``-d`` understands."""
    text = text.strip()
    if text.isdigit():
        return f"{text}s"
    if text[:-1].isdigit() and text[-1] in "smh":
        return text
    raise ValueError(f"not a duration like 10s: {text!r}")


REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, summary: str, *, targets: tuple[Target, ...] = (), default: bool = True):
    """Register ``fn(run) -> list[Row]`` under ``name``."""

    def register(fn):
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(name, fn, summary, tuple(targets), default)
        return fn

    return register


def load_all() -> dict[str, Benchmark]:
    for module in MODULES:
        importlib.import_module(module)
    return REGISTRY
