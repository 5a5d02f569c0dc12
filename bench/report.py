"""The table printed after a run and the JSON kept in ``var/bench/``."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
import platform
import time
from importlib import metadata

from bench import Benchmark, Row, Target

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "var" / "bench"
PACKAGES = (
    "falcon",
    "gunicorn",
    "redis",
    "hiredis",
    "PyJWT",
    "cryptography",
    "argon2-cffi",
    "peewee",
    "psycopg2-binary",
    "msgspec",
)


def ratio(row: Row, rows: dict[str, Row]) -> float | None:
    base = rows.get(row.baseline) if row.baseline else None
    if base is None or not base.requests_per_s:
        return None
    return row.requests_per_s / base.requests_per_s


def target_ratio(target: Target, rows: dict[str, Row]) -> float | None:
    row, base = rows.get(target.row), rows.get(target.baseline)
    if row is None or base is None or not base.requests_per_s:
        return None
    return row.requests_per_s / base.requests_per_s


def table(rows: list[Row]) -> str:
    by_name = {row.name: row for row in rows}
    width = max([len("name")] + [len(row.name) for row in rows])
    header = (
        f"{'name':<{width}}  {'req/s':>9}  {'turns min-max':>15}  {'p50 ms':>8}  {'p99 ms':>8}  "
        f"{'ratio vs baseline':<20}  {'server CPU us/req':>17}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        value = ratio(row, by_name)
        shown = (
            "1.00 (baseline)"
            if row.baseline is None
            else (
                f"{value:.2f} vs {row.baseline}"
                if value is not None and value >= 0.1
                else f"{value:.3f} vs {row.baseline}"
                if value is not None
                else "-"
            )
        )
        cpu = f"{row.cpu_us_per_request:.0f}" if row.cpu_us_per_request is not None else "-"
        low, high = row.detail.get("spread_requests_per_s", (row.requests_per_s, row.requests_per_s))
        spread = f"{low:.0f}-{high:.0f}"
        lines.append(
            f"{row.name:<{width}}  {row.requests_per_s:9.1f}  {spread:>15}  {row.p50_ms:8.2f}  "
            f"{row.p99_ms:8.2f}  {shown:<20}  {cpu:>17}"
        )
    return "\n".join(lines)


def idle_fraction(seconds: float = 1.0) -> float:
    """How much of the machine's CPU nobody used during ``seconds`` (1.0 = all idle)."""

    def sample():
        fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])  # idle + iowait, total

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def target_lines(bench: Benchmark, rows: list[Row]) -> list[str]:
    by_name = {row.name: row for row in rows}
    lines = []
    for target in bench.targets:
        value = target_ratio(target, by_name)
        label = f"{target.row}/{target.baseline}"
        if value is None:
            lines.append(f"{label} = n/a (target >= {target.minimum})")
        else:
            lines.append(f"{label} = {value:.2f} (target >= {target.minimum})")
            if value < target.minimum:
                lines.append(f"  below the target: {label} must be at least {target.minimum}")
    return lines


def machine() -> dict:
    model = ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
    }


def write_json(started: datetime.datetime, results: dict, run, failures: dict) -> pathlib.Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"results-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {
        "started_at": started.isoformat(),
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "machine": machine(),
        "settings": {
            "duration": run.duration,
            "warmup": run.warmup,
            "threads": run.threads,
            "connections": run.connections,
            "repeats": run.repeats,
            **run.settings,
        },
        "notes": run.notes,
        "benchmarks": {},
        "failures": failures,
    }
    for bench, rows in results.values():
        by_name = {row.name: row for row in rows}
        document["benchmarks"][bench.name] = {
            "summary": bench.summary,
            "rows": [
                {
                    "name": row.name,
                    "requests_per_s": round(row.requests_per_s, 1),
                    "p50_ms": round(row.p50_ms, 3),
                    "p99_ms": round(row.p99_ms, 3),
                    "baseline": row.baseline,
                    "ratio": round(ratio(row, by_name), 4) if ratio(row, by_name) is not None else None,
                    "requests": row.requests,
                    "errors": row.errors,
                    "server_cpu_us_per_request": (
                        round(row.cpu_us_per_request, 1) if row.cpu_us_per_request is not None else None
                    ),
                    **row.detail,
                }
                for row in rows
            ],
            "targets": [
                {
                    "row": t.row,
                    "baseline": t.baseline,
                    "minimum": t.minimum,
                    "ratio": (round(target_ratio(t, by_name), 4) if target_ratio(t, by_name) is not None else None),
                    "met": (target_ratio(t, by_name) or 0) >= t.minimum,
                }
                for t in bench.targets
            ],
        }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)
    return path
