"""``hearth import supabase``: the Supabase import, run in this process (docs/import.md).

    hearth import supabase --source-db URL [--storage-endpoint URL --storage-region R
        --storage-key-id ID --storage-secret-env VAR | --storage-dir DIR] [--mapping FILE]
        [--dry-run] [--only TABLES] [--since last|TIMESTAMP] [--apply-deletes]
        [--send-password-links] [--report FILE]

The source URL and the storage keys may come from the environment instead
(``SUPABASE_SOURCE_DB_URL``, ``SUPABASE_STORAGE_*``). On a terminal each table has a progress
line (rows, rows/s, ETA, reported); otherwise one JSON line per finished table and one for the
run. Exit 0: everything came across; 1: rows were reported (see ``--report``); 2: bad input
(unreachable source, invalid mapping, unknown columns), refused before anything was written; 3: the run
started and stopped on an error (the source connection lost, a bug): it is marked failed, and the same
command run again resumes it.
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import sys
import time
from typing import Any

EXIT_OK, EXIT_REPORTED, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def add_parser(commands, *, database) -> None:
    """Register ``import supabase``; ``database`` is the ``hearth`` command's database context (``ops.cli``)."""
    import_parser = commands.add_parser("import", help="bring data over from another backend")
    sources = import_parser.add_subparsers(title="import sources", metavar="SOURCE")
    supabase = sources.add_parser("supabase", help="import a Supabase project (users, app tables, files)")
    supabase.add_argument("--source-db", help="the source database URL (default: SUPABASE_SOURCE_DB_URL)")
    supabase.add_argument("--storage-endpoint", help="Supabase Storage's S3 endpoint URL")
    supabase.add_argument("--storage-region", help="its region")
    supabase.add_argument("--storage-key-id", help="its S3 access key id")
    supabase.add_argument("--storage-secret-env", metavar="VAR", help="the environment variable holding the secret key")
    supabase.add_argument("--storage-dir", help="a local directory holding an export of the buckets")
    supabase.add_argument("--mapping", type=pathlib.Path, help="the mapping file (TOML) for the app tables")
    supabase.add_argument("--dry-run", action="store_true", help="validate and read everything, write nothing")
    supabase.add_argument("--only", help="comma-separated source tables (e.g. auth.users,auth.identities)")
    supabase.add_argument("--since", help="'last' (the previous run's snapshot) or an ISO timestamp")
    supabase.add_argument(
        "--apply-deletes", action="store_true", help="delete in Hearth what was deleted at the source"
    )
    supabase.add_argument(
        "--send-password-links", action="store_true", help="email a set-password link to imported users without one"
    )
    supabase.add_argument(
        "--chunk-size", type=int, default=None, help="source rows per transaction (default 500; auth.users 20,000)"
    )
    supabase.add_argument("--report", type=pathlib.Path, help="write every reported row here (.csv or JSON lines)")
    supabase.set_defaults(handler=import_supabase, database=database)


class _Progress:
    """A line per table on a terminal (rewritten with \\r), else a JSON line per finished table."""

    def __init__(self, stream, tty: bool):
        self.stream, self.tty = stream, tty
        self.started: dict[str, float] = {}

    def __call__(self, update) -> None:
        started = self.started.setdefault(update.step, time.monotonic())
        counts = update.counts
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = counts["read"] / elapsed
        reported = counts.get("reported", 0)
        if self.tty:
            left = max(update.expected - counts["read"], 0)
            eta = f"{left / rate:.0f}s" if rate and not update.done else "-"
            share = counts["read"] / update.expected if update.expected else 1.0
            bar = "#" * int(24 * min(share, 1.0))
            line = (
                f"\r{update.step:<24} [{bar:<24}] {counts['read']}/{update.expected} rows"
                f" {rate:,.0f} rows/s ETA {eta} reported {reported}"
            )
            self.stream.write(line + ("\n" if update.done else ""))
            self.stream.flush()
        elif update.done:
            self.stream.write(json.dumps({"step": update.step, "rows_per_second": round(rate, 1), **counts}) + "\n")
            self.stream.flush()


class _ReportFile:
    def __init__(self, path: pathlib.Path | None):
        self.path, self.handle, self.writer = path, None, None
        if path is not None:
            self.handle = path.open("w", newline="", encoding="utf-8")
            if path.suffix == ".csv":
                from models.imports.report import COLUMNS

                self.writer = csv.DictWriter(self.handle, fieldnames=COLUMNS)
                self.writer.writeheader()

    def __call__(self, row: dict[str, Any]) -> None:
        if self.handle is None:
            return
        if self.writer is not None:
            self.writer.writerow(row)
        else:
            self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _bad(message: str) -> int:
    print(f"hearth: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _storage(args, settings) -> tuple[str | None, dict]:
    if args.storage_dir and args.storage_endpoint:
        raise ValueError("give --storage-endpoint or --storage-dir, not both")
    secret = ""
    if args.storage_secret_env:
        secret = os.environ.get(args.storage_secret_env, "")
        if not secret:
            raise ValueError(f"--storage-secret-env: {args.storage_secret_env} is not set")
    storage = {
        "endpoint": args.storage_endpoint or settings.supabase_storage_endpoint,
        "region": args.storage_region or settings.supabase_storage_region,
        "key_id": args.storage_key_id or settings.supabase_storage_key_id,
        "secret": secret or settings.supabase_storage_secret,
        "dir": args.storage_dir or settings.supabase_storage_dir,
    }
    kind = "dir" if storage["dir"] else ("s3" if storage["endpoint"] else None)
    return kind, storage


def import_supabase(args) -> int:
    from models.job_submission import jobs_submitted_after_commit
    from services.jobqueue import CeleryJobQueue
    from services.storage import make_storage
    from services.supabase_storage import StorageSourceError
    from settings import Settings
    from tasks.import_files import file_collaborators
    from tasks.imports import BadInput, ImportRequest, RunStopped, execute

    settings = Settings.from_env()
    try:
        storage_kind, storage = _storage(args, settings)
        mapping = args.mapping.read_text(encoding="utf-8") if args.mapping else None
        files = file_collaborators(storage, settings, make_storage(settings))
    except (ValueError, OSError, StorageSourceError) as exc:
        return _bad(str(exc))
    request = ImportRequest(
        only=[name.strip() for name in (args.only or "").split(",") if name.strip()],
        since=args.since,
        dry_run=args.dry_run,
        apply_deletes=args.apply_deletes,
        send_password_links=args.send_password_links,
        mapping=mapping,
        storage=storage_kind,
    )
    if args.since and args.since != "last":
        import datetime

        try:
            datetime.datetime.fromisoformat(args.since)
        except ValueError:
            return _bad(f"--since: not 'last' nor an ISO timestamp: {args.since!r}")
    try:
        report = _ReportFile(args.report)
    except OSError as exc:
        return _bad(f"--report: {exc}")
    progress = _Progress(sys.stderr if sys.stderr.isatty() else sys.stdout, sys.stderr.isatty())
    try:
        with args.database(settings), jobs_submitted_after_commit(CeleryJobQueue.from_settings(settings).submit):
            run = execute(
                request,
                source_url=args.source_db or settings.supabase_source_db_url,
                on_progress=progress,
                report_sink=report,
                collaborators={"supabase_storage": storage, **files},
                chunk_size=max(1, args.chunk_size) if args.chunk_size else None,
            )
    except BadInput as exc:
        return _bad("the import cannot start, nothing was written:\n  " + "\n  ".join(exc.problems))
    except RunStopped as exc:
        print(
            f"hearth: the import stopped: {exc.problem}\n  run {exc.run_id} is marked failed; what it committed"
            " stays. Run the same command again to resume it.",
            file=sys.stderr,
        )
        return EXIT_STOPPED
    except KeyboardInterrupt:
        print(
            "hearth: interrupted; the run is marked failed. Run the same command again to resume it.", file=sys.stderr
        )
        return EXIT_INTERRUPTED
    finally:
        report.close()
    summary = {"run": str(run.id), "dry_run": run.dry_run, "reported": run.reported, "tables": run.counts}
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return EXIT_REPORTED if run.reported else EXIT_OK


__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REPORTED",
    "EXIT_STOPPED",
    "add_parser",
    "import_supabase",
]
