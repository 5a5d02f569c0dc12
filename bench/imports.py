"""``python -m bench imports``: the Supabase import's rows/s beside a raw COPY of the same rows, and its RSS.

A source database on the same PostgreSQL server (``bench/import_source.py``: Supabase-shaped
``auth.users`` and ``auth.identities``, BENCH_IMPORT_USERS rows, default 100,000) and a target
Hearth database migrated to head (``bench.stack``). In turns (BENCH_REPEATS, median reported):

* ``users: raw COPY``: ``COPY (SELECT ...) TO STDOUT`` on the source, the same transformation as
  the ``auth.users`` step written in SQL, piped into ``COPY users (...) FROM STDIN`` on the target,
  one transaction: the baseline;
* ``users: import``: ``tasks.imports.execute`` with ``--only auth.users``, in this process as
  ``hearth import supabase`` runs it (snapshot, binary COPY from the source into a staging table,
  checkpointed chunks of 20,000 (the first 5,000), the rules in SQL, import map, report);
* ``identities: raw COPY`` / ``identities: import``: the same for ``auth.identities`` into
  ``user_identities`` (after the users of that turn's import);
* ``listings: raw COPY`` / ``listings: import``: BENCH_IMPORT_LISTINGS (default 10,000; 0 skips
  them) rows of the wide app table ``public.listings`` into ``properties`` through a mapping file
  (``bench/import_listings.py``), the raw COPY applying the mapping's transforms in SQL.

The target's import tables and users are emptied (TRUNCATE) before each case. p50/p99 are per
chunk of 500 rows (the raw COPY's are its mean per 500 rows). ``CPU us/row`` is this process's CPU
(the importer's Python; the raw COPY only pipes bytes); the JSON also has ``postgres_cpu_us_per_row``
(the source and target backends, from /proc).

RSS (BENCH_IMPORT_RSS_ROWS, default 1,000,000; 0 skips it): the source grows to that many users
and ``python -m bench.import_rss`` imports them in a child process, which reports its peak RSS
(VmHWM). Targets: import/raw >= 0.5 for users and for the wide app table; peak RSS < 300 MB.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time

from bench import Row, Run, Target, benchmark, import_listings, stack
from bench.import_source import (
    IMPORT_APPLICATION_NAME,
    RAW_IDENTITIES,
    RAW_IDENTITY_COLUMNS,
    RAW_USER_COLUMNS,
    RAW_USERS,
    BenchSource,
)

USERS_RAW, USERS_IMPORT = "users: raw COPY", "users: import"
IDENTITIES_RAW, IDENTITIES_IMPORT = "identities: raw COPY", "identities: import"
LISTINGS_RAW, LISTINGS_IMPORT = "listings: raw COPY", "listings: import"
RSS_ROW = "users: import in a child (RSS)"
RSS_TARGET_MB = 300
CHUNK = 500
_TICKS = os.sysconf("SC_CLK_TCK")
_EMPTY = "TRUNCATE users, properties, import_map, import_runs, import_report CASCADE"


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _backend_cpu(pid: int | None) -> float:
    """CPU seconds a PostgreSQL backend on this machine has used (0 when it cannot be read)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _connect(url: str):
    import psycopg2

    from models.db import connect_args

    args = connect_args(url)
    args["dbname"] = args.pop("database")
    return psycopg2.connect(**args)


def _pid(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])


def _empty_target(target_url: str, extra: str = "") -> None:
    conn = _connect(target_url)
    try:
        with conn.cursor() as cur:
            cur.execute(extra or _EMPTY)
        conn.commit()
    finally:
        conn.close()


def raw_copy(source_url: str, target_url: str, select: str, table: str, columns: str) -> dict:
    """Pipe ``COPY (select) TO STDOUT`` into ``COPY table (columns) FROM STDIN``; one transaction."""
    source, target = _connect(source_url), _connect(target_url)
    pids = (_pid(source), _pid(target))
    read_fd, write_fd = os.pipe()
    reader, writer = os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with source.cursor() as cur:
                cur.copy_expert(f"COPY ({select}) TO STDOUT", writer)
        except BaseException as exc:  # noqa: BLE001 - raised again by the caller's thread
            failure.append(exc)
        finally:
            writer.close()

    cpu0 = sum(_backend_cpu(p) for p in pids)
    process0, started = time.process_time(), time.perf_counter()
    try:
        producer = threading.Thread(target=produce, name="raw-copy-source")
        producer.start()
        with target.cursor() as cur:
            cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", reader)
            rows = cur.rowcount
        producer.join()
        if failure:
            raise failure[0]
        target.commit()
        elapsed = time.perf_counter() - started
        return {
            "rows": rows,
            "seconds": elapsed,
            "chunk_ms": [elapsed * 1000 * CHUNK / max(1, rows)],
            "client_cpu": time.process_time() - process0,
            "postgres_cpu": sum(_backend_cpu(p) for p in pids) - cpu0,
        }
    finally:
        reader.close()
        source.close()
        target.close()


def run_import(source_url: str, table: str, mapping: str | None = None) -> dict:
    """One ``--only table`` import through ``tasks.imports.execute``, timed chunk by chunk."""
    from models.db import db
    from tasks.imports import ImportRequest, execute

    source_db = source_url.split("?", 1)[0].rsplit("/", 1)[1]
    marks: list[float] = []
    state: dict = {"source_pid": None, "source_cpu": 0.0}

    def progress(update) -> None:
        marks.append(time.perf_counter())
        if state["source_pid"] is None:
            found = db.execute_sql(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s"
                " ORDER BY backend_start DESC LIMIT 1",
                (IMPORT_APPLICATION_NAME, source_db),
            ).fetchone()
            state["source_pid"] = found[0] if found else 0  # 0: not found, its CPU is left out
        state["source_cpu"] = _backend_cpu(state["source_pid"])  # that backend was born for this run

    target_pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    cpu0 = _backend_cpu(target_pid)
    process0, started = time.process_time(), time.perf_counter()
    run = execute(ImportRequest(only=[table], mapping=mapping), source_url=source_url, on_progress=progress)
    elapsed = time.perf_counter() - started
    counts = run.counts[table]
    came = counts["inserted"] + counts["updated"] + counts["unchanged"]
    if came + sum(counts["skipped"].values()) + sum(counts["failed"].values()) != counts["read"] or counts["failed"]:
        raise RuntimeError(f"{table}: the counts do not add up or rows failed: {counts}")
    points = [started, *marks]
    return {
        "rows": counts["read"],
        "seconds": elapsed,
        "chunk_ms": [(b - a) * 1000 for a, b in itertools.pairwise(points)][:-1] or [elapsed * 1000],
        "client_cpu": time.process_time() - process0,
        "postgres_cpu": _backend_cpu(target_pid) - cpu0 + state["source_cpu"],
        "counts": counts,
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _row(name: str, results: list[dict], baseline: str | None) -> Row:
    rates = [r["rows"] / r["seconds"] for r in results]
    middle = sorted(results, key=lambda r: r["rows"] / r["seconds"])[len(results) // 2]
    rows = middle["rows"]
    return Row(
        name,
        statistics.median(rates),
        _percentile(middle["chunk_ms"], 50),
        _percentile(middle["chunk_ms"], 99),
        baseline=baseline,
        requests=rows,
        cpu_us_per_request=middle["client_cpu"] * 1e6 / max(1, rows),
        detail={
            "spread_requests_per_s": (min(rates), max(rates)),
            "seconds": [round(r["seconds"], 2) for r in results],
            "postgres_cpu_us_per_row": round(middle["postgres_cpu"] * 1e6 / max(1, rows), 1),
            **({"counts": middle["counts"]} if "counts" in middle else {}),
        },
    )


def _rss(run: Run, source: BenchSource, target_url: str, rows: int) -> Row:
    source.fill(rows)
    _empty_target(target_url)
    run.log(f"imports: {rows:,} users in a child process")
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.import_rss", source.import_url, target_url, "auth.users"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the RSS child failed ({done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peak_mb = result["peak_rss_kb"] / 1024
    verdict = "met" if peak_mb < RSS_TARGET_MB else "NOT met"
    run.note(
        f"imports: {result['rows']:,} users imported in a child process, peak RSS {peak_mb:.0f} MB"
        f" (target < {RSS_TARGET_MB} MB: {verdict}); {result['rows'] / result['seconds']:,.0f} rows/s"
    )
    return Row(
        RSS_ROW,
        result["rows"] / result["seconds"],
        0.0,
        0.0,
        requests=result["rows"],
        cpu_us_per_request=result["cpu_seconds"] * 1e6 / max(1, result["rows"]),
        detail={"peak_rss_mb": round(peak_mb, 1), "seconds": round(result["seconds"], 1), "target_mb": RSS_TARGET_MB},
    )


@benchmark(
    "imports",
    "the Supabase import (auth.users, auth.identities, a wide app table) beside a raw COPY of the same rows;"
    " its RSS on 1M users",
    targets=(Target(USERS_IMPORT, USERS_RAW, 0.5), Target(LISTINGS_IMPORT, LISTINGS_RAW, 0.5)),
    default=False,
)
def imports(run: Run) -> list[Row]:
    from models.db import db, make_database

    users = _int("BENCH_IMPORT_USERS", 100_000)
    rss_rows = _int("BENCH_IMPORT_RSS_ROWS", 1_000_000)
    name = os.environ.get("BENCH_IMPORT_SOURCE_DB", "hearth_bench_src")
    run.settings["imports"] = f"{users:,} source users; {run.repeats} turns, median; RSS on {rss_rows:,} users"
    run.settings["load"] = "{:.2f} {:.2f} {:.2f} (1/5/15 min, at the start)".format(*os.getloadavg())
    listings = _int("BENCH_IMPORT_LISTINGS", 10_000)
    names = (USERS_RAW, USERS_IMPORT, IDENTITIES_RAW, IDENTITIES_IMPORT, LISTINGS_RAW, LISTINGS_IMPORT)
    turns: dict[str, list[dict]] = {n: [] for n in names[: 6 if listings else 4]}
    with stack.workspace(run, "imports") as (hearth, _directory, _broker), BenchSource(name, log=run.log) as source:
        source.fill(users)
        if listings:
            import_listings.fill(source.conn, listings, users)
        target = hearth.database_url
        database = make_database(target, max_connections=2)
        db.initialize(database)
        try:
            for turn in range(run.repeats):
                _empty_target(target)
                turns[USERS_RAW].append(raw_copy(source.url, target, RAW_USERS, "users", RAW_USER_COLUMNS))
                _empty_target(target)
                with db.connection_context():
                    turns[USERS_IMPORT].append(run_import(source.import_url, "auth.users"))
                turns[IDENTITIES_RAW].append(
                    raw_copy(source.url, target, RAW_IDENTITIES, "user_identities", RAW_IDENTITY_COLUMNS)
                )
                _empty_target(target, "TRUNCATE user_identities")
                with db.connection_context():
                    turns[IDENTITIES_IMPORT].append(run_import(source.import_url, "auth.identities"))
                if listings:  # onto the users of this turn's import (the owners resolve through its import map)
                    turns[LISTINGS_RAW].append(
                        raw_copy(
                            source.url,
                            target,
                            import_listings.RAW_LISTINGS,
                            "properties",
                            import_listings.RAW_LISTING_COLUMNS,
                        )
                    )
                    _empty_target(target, "TRUNCATE properties CASCADE")
                    with db.connection_context():
                        turns[LISTINGS_IMPORT].append(
                            run_import(source.import_url, import_listings.LISTINGS_TABLE, import_listings.MAPPING)
                        )
                run.log(
                    f"turn {turn + 1}: "
                    + ", ".join(f"{n} {r[-1]['rows'] / r[-1]['seconds']:,.0f} rows/s" for n, r in turns.items())
                )
        finally:
            database.close_all()
        rows = [
            _row(USERS_RAW, turns[USERS_RAW], None),
            _row(USERS_IMPORT, turns[USERS_IMPORT], USERS_RAW),
            _row(IDENTITIES_RAW, turns[IDENTITIES_RAW], None),
            _row(IDENTITIES_IMPORT, turns[IDENTITIES_IMPORT], IDENTITIES_RAW),
        ]
        if listings:
            rows += [
                _row(LISTINGS_RAW, turns[LISTINGS_RAW], None),
                _row(LISTINGS_IMPORT, turns[LISTINGS_IMPORT], LISTINGS_RAW),
            ]
        if rss_rows:
            rows.append(_rss(run, source, target, rss_rows))
    run.note("imports: load average at the end {:.2f} {:.2f} {:.2f} (1/5/15 min)".format(*os.getloadavg()))
    return rows
