"""``python -m bench [NAME ...]``: run benchmarks, print a table per benchmark, keep the figures as JSON.

With no NAME, every default benchmark runs. ``--list`` shows them all.
Environment: BENCH_DURATION (default 10s), BENCH_WARMUP (1s), BENCH_THREADS (2),
BENCH_CONNECTIONS (32), BENCH_REPEATS (3 turns; the median is reported),
BENCH_DATABASE_URL (an admin URL of the PostgreSQL server), BENCH_REDIS_URL.

Exit status: 0 when every benchmark ran and no request failed, 1 otherwise.
A missed target is printed, not an error: figures on a shared machine vary.
"""

from __future__ import annotations

import argparse
import datetime
import signal
import sys
import traceback

from bench import Run, load_all, report

# Below this share of idle CPU before the run, the report warns that something else is running.
BUSY_IDLE = 0.9


def _log(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    registry = load_all()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: every default one)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    if args.list:
        for bench in registry.values():
            marker = "" if bench.default else " (only when named)"
            print(f"{bench.name:<14} {bench.summary}{marker}")
        return 0
    unknown = [name for name in args.names if name not in registry]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(registry)}")
    selected = [registry[name] for name in args.names] or [b for b in registry.values() if b.default]

    # A SIGTERM unwinds like Ctrl-C, so servers stop and the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run.from_env(log=_log)
    started = datetime.datetime.now(datetime.UTC)
    idle = report.idle_fraction()
    run.settings["machine_idle_before"] = round(idle, 3)
    if idle < BUSY_IDLE:
        run.note(
            f"the machine was busy before the run ({idle:.0%} idle): other processes take CPU from "
            "the servers and wrk, so figures are lower and noisier than on a quiet machine"
        )
    results, failures = {}, {}
    for bench in selected:
        _log(f"== {bench.name}: {bench.summary}")
        try:
            results[bench.name] = (bench, bench.run(run))
        except Exception as exc:  # noqa: BLE001 - report it and go on with the next benchmark
            failures[bench.name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()

    stamp = started.strftime("%Y-%m-%d %H:%M UTC")
    machine = report.machine()
    print(
        f"\nResults ({stamp}; {machine['cores']} cores, {machine['cpu'] or 'unknown CPU'}; "
        f"load {run.settings.get('load', '-')})"
    )
    for bench, rows in results.values():
        print(f"\n[{bench.name}] {bench.summary}")
        print(report.table(rows))
        for line in report.target_lines(bench, rows):
            print(line)
    if run.notes:
        print()
        for note in run.notes:
            print(f"note: {note}")
    for name, problem in failures.items():
        print(f"FAILED {name}: {problem}")
    path = report.write_json(started, results, run, failures)
    print(f"\nresults written to {path.relative_to(report.ROOT)}")
    failed_requests = any(row.errors for _, rows in results.values() for row in rows)
    return 1 if failures or failed_requests else 0


if __name__ == "__main__":
    sys.exit(main())
