"""The ``hearth backup`` and ``hearth restore`` commands (the work itself is in ``ops/backup.py``).

    hearth backup DIR|s3://bucket/prefix [--with-objects] [--keep N] [--json]
    hearth backup verify SOURCE
    hearth restore SOURCE [--force]

SOURCE is a backup's own folder or a location (its newest complete backup). Exit status: 0 done
and checked, 1 a failure or a mismatch with the manifest (each listed on stderr), 2 ``restore``
refused to overwrite a database or storage that holds data.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from settings import Settings

NOT_EMPTY_STATUS = 2


def add_commands(commands) -> None:
    backup = commands.add_parser(
        "backup",
        help="back up the database and the object list (or `backup verify SOURCE`)",
        description="Write a backup to DIR or s3://bucket/prefix; `hearth backup verify SOURCE` restores one "
        "into a scratch database and compares it with its manifest.",
    )
    backup.add_argument("where", nargs="+", metavar="TARGET", help="DIR or s3://bucket/prefix[?endpoint=URL]")
    backup.add_argument("--with-objects", action="store_true", default=None, help="copy the stored objects in too")
    backup.add_argument("--keep", type=int, metavar="N", help="keep the N newest complete backups (BACKUP_KEEP)")
    backup.add_argument("--json", action="store_true", help="print the manifest as JSON")
    backup.set_defaults(handler=run(backup_command))
    restore = commands.add_parser("restore", help="restore a backup into an empty database and storage")
    restore.add_argument("source", help="a backup folder, or a location (its newest complete backup)")
    restore.add_argument("--force", action="store_true", help="replace what the database and storage hold")
    restore.set_defaults(handler=run(restore_command))


def _database_url(settings: Settings) -> str:
    from ops.devservices import ensure_database

    return ensure_database(settings)


def _errors():
    from ops import backup
    from ops.backup_postgres import PostgresError
    from ops.backup_target import TargetError
    from services.storage import StorageError

    return (backup.BackupError, PostgresError, TargetError, StorageError)


class _Failed(Exception):
    """Ends a command with its message on stderr and status 1 (``run`` turns it into that)."""


def _command_error(exc: BaseException) -> Exception:
    return _Failed(str(exc))


def run(handler):
    """``handler`` as a ``hearth`` command: an expected failure prints one line and exits 1."""

    def command(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except _Failed as exc:
            print(f"hearth: {exc}", file=sys.stderr)
            return 1

    return command


def _report(outcome, verb: str) -> int:
    for problem in outcome.problems:
        print(f"hearth: {problem}", file=sys.stderr)
    tables = outcome.manifest["tables"]
    summary = (
        f"{verb} {outcome.name}: {len(tables)} tables, {sum(tables.values())} rows, "
        f"{outcome.manifest['objects']['count']} objects in {outcome.seconds:.1f}s"
    )
    if outcome.problems:
        print(f"hearth: {summary}: {len(outcome.problems)} differences from the manifest", file=sys.stderr)
        return 1
    print(f"{summary}; counts and checksums match the manifest")
    return 0


def backup_command(args: argparse.Namespace) -> int:
    from ops import backup
    from ops.backup_target import open_target

    settings = Settings.from_env()
    if args.where[0] == "verify":
        if len(args.where) != 2:
            raise _command_error(ValueError("usage: hearth backup verify SOURCE"))
        try:
            return _report(backup.verify_backup(settings, _database_url(settings), args.where[1]), "verified")
        except _errors() as exc:
            raise _command_error(exc) from None
    if len(args.where) != 1:
        raise _command_error(ValueError("usage: hearth backup TARGET (a directory named verify: ./verify)"))
    keep = settings.backup_keep if args.keep is None else args.keep
    if keep < 1:
        raise _command_error(ValueError("--keep must be at least 1"))
    with_objects = settings.backup_with_objects if args.with_objects is None else args.with_objects
    try:
        target = open_target(args.where[0], settings)
        outcome = backup.create_backup(settings, _database_url(settings), target, with_objects=with_objects, keep=keep)
    except _errors() as exc:
        raise _command_error(exc) from None
    if args.json:
        print(json.dumps(dataclasses.asdict(outcome) | {"target": target.description}))
    else:
        files = outcome.manifest["files"]
        print(
            f"backup {outcome.name} written to {target.description} in {outcome.seconds:.1f}s: "
            f"{sum(outcome.manifest['tables'].values())} rows, dump {files['database.dump']['size']} bytes, "
            f"{outcome.manifest['objects']['count']} objects{' (included)' if with_objects else ' (listed)'}"
        )
    return 0


def restore_command(args: argparse.Namespace) -> int:
    from ops import backup

    settings = Settings.from_env()
    try:
        outcome = backup.restore_backup(settings, _database_url(settings), args.source, force=args.force)
    except backup.NotEmpty as exc:
        print(f"hearth: {exc}", file=sys.stderr)
        return NOT_EMPTY_STATUS
    except _errors() as exc:
        raise _command_error(exc) from None
    return _report(outcome, "restored")
