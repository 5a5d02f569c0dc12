"""``python -m bench.import_rss SOURCE_URL TARGET_URL TABLE``: one import in this process, then its peak RSS.

The ``imports`` benchmark runs this in a child process so that the peak resident set (the
kernel's VmHWM, the high-water mark over the process's life) is the importer's alone. Prints one
JSON line: rows read, seconds, CPU seconds, ``peak_rss_kb``.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time


def peak_rss_kb() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(argv: list[str]) -> int:
    source_url, target_url, table = argv
    from models.db import db, make_database
    from tasks.imports import ImportRequest, execute

    database = make_database(target_url, max_connections=1)
    db.initialize(database)
    started, cpu0 = time.perf_counter(), time.process_time()
    with db.connection_context():
        run = execute(ImportRequest(only=[table]), source_url=source_url)
    result = {
        "rows": run.counts[table]["read"],
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu0,
        "peak_rss_kb": peak_rss_kb(),
    }
    database.close_all()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
