"""``hearth backup``, ``hearth backup verify`` and ``hearth restore``: backups that are proven to restore.

A backup (see ``ops/backup_target.py`` for the layout) is a ``pg_dump -Fc`` of the Hearth database,
the list of stored objects with their SHA-256 (and the objects themselves with ``--with-objects``),
and ``manifest.json``, written last: format version, start and end time, the migration head and the
row count of every table, both read in the snapshot that was dumped, and the SHA-256 of every file.

``restore`` fills an empty database and storage (or, with ``--force``, replaces what they hold) and
then compares every table's row count and every object's checksum with the manifest; ``verify``
restores into a scratch database on the same server, compares, and drops it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib
import tempfile
import time
from dataclasses import dataclass, field

from ops import backup_postgres as pg
from ops.backup_objects import backup_object_problems, object_problems, restore_objects, snapshot_objects
from ops.backup_target import MANIFEST, Target, TargetError, open_target
from services.storage import Storage, make_storage
from settings import Settings

FORMAT = "hearth-backup"
FORMAT_VERSION = 1
DUMP = "database.dump"
OBJECTS = "objects.json"


class BackupError(Exception):
    """A backup, restore or verification could not be done; the message says why."""


class NotEmpty(BackupError):
    """The database or storage to restore into holds data and ``--force`` was not given."""


@dataclass
class Outcome:
    name: str
    manifest: dict
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _sha256_file(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name_for(moment: datetime.datetime, taken: list[str]) -> str:
    """A new backup's name: its UTC second, then ``-002``, ``-003``... past every name already used in that
    second. Names sort in the order the backups were made (retention keeps the last ones by name), so a
    name retention freed is never handed out again within the same second."""
    second = moment.strftime("%Y%m%dT%H%M%SZ")
    same = [name for name in taken if name == second or name.startswith(second + "-")]
    if not same:
        return second
    used = [int(name.rpartition("-")[2]) for name in same if name.rpartition("-")[2].isdigit()]
    return f"{second}-{max([1, *used]) + 1:03d}"


def complete_backups(target: Target) -> list[str]:
    """Names of the backups with a manifest, oldest first."""
    return [name for name in target.names() if target.exists(name, MANIFEST)]


def create_backup(
    settings: Settings, database_url: str, target: Target, *, with_objects: bool, keep: int | None = None
) -> Outcome:
    """Write one complete backup to ``target``, then apply retention (``keep``). Returns its manifest."""
    started = time.monotonic()
    created_at = _now()
    name = _name_for(created_at, target.names())
    storage = make_storage(settings)
    try:
        with tempfile.TemporaryDirectory(prefix="hearth-backup-") as scratch:
            dump = pathlib.Path(scratch) / DUMP
            snapshot = pg.consistent_dump(database_url, dump)
            target.put_file(name, DUMP, dump)
            objects = snapshot_objects(storage, target if with_objects else None, name)
            listing = json.dumps({"objects": objects}, indent=1).encode()
            target.put(name, OBJECTS, listing)
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "name": name,
                "created_at": created_at.isoformat(),
                "finished_at": _now().isoformat(),
                "migration_head": snapshot.migration_head,
                "postgres": {"server_major": snapshot.server_major, "pg_dump": snapshot.pg_dump.path},
                "tables": snapshot.counts,
                "objects": {
                    "count": len(objects),
                    "bytes": sum(item["size"] for item in objects),
                    "included": with_objects,
                },
                "files": {
                    DUMP: {"size": dump.stat().st_size, "sha256": _sha256_file(dump)},
                    OBJECTS: {"size": len(listing), "sha256": hashlib.sha256(listing).hexdigest()},
                },
            }
        target.put(name, MANIFEST, json.dumps(manifest, indent=2).encode())
    except BaseException:
        target.remove(name)  # never leave a half-written backup behind
        raise
    prune(target, keep, current=name)
    return Outcome(name, manifest, seconds=time.monotonic() - started)


def prune(target: Target, keep: int | None, *, current: str) -> list[str]:
    """Delete incomplete backups (other than ``current``) and the oldest complete ones beyond ``keep``."""
    removed = []
    complete = complete_backups(target)
    for name in target.names():
        if name not in complete and name != current:
            target.remove(name)
            removed.append(name)
    if keep is not None and len(complete) > keep:
        for name in complete[: len(complete) - keep]:
            target.remove(name)
            removed.append(name)
    return removed


def locate(spec: str, settings: Settings) -> tuple[Target, str]:
    """The backup ``spec`` names: a backup's own folder, or a location (its newest complete backup)."""
    target = open_target(spec, settings)
    if target.exists("", MANIFEST):
        trimmed = spec.split("?", 1)
        parent, _, name = trimmed[0].rstrip("/").rpartition("/")
        return open_target(parent + ("?" + trimmed[1] if len(trimmed) > 1 else ""), settings), name
    complete = complete_backups(target)
    if not complete:
        raise BackupError(f"no complete backup in {target.description}")
    return target, complete[-1]


def read_manifest(target: Target, name: str) -> dict:
    try:
        manifest = json.loads(target.read(name, MANIFEST))
    except (OSError, ValueError) as exc:
        raise BackupError(f"backup {name}: unreadable manifest ({exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"backup {name}: not a {FORMAT} version {FORMAT_VERSION} manifest")
    return manifest


def _fetch_checked(target: Target, name: str, manifest: dict, file: str, local: pathlib.Path) -> None:
    target.get_file(name, file, local)
    expected = manifest["files"][file]["sha256"]
    if _sha256_file(local) != expected:
        raise BackupError(f"backup {name}: {file} does not match its checksum in the manifest (damaged or altered)")


def count_problems(expected: dict[str, int], found: dict[str, int]) -> list[str]:
    problems = []
    for table in sorted(set(expected) | set(found)):
        if expected.get(table) != found.get(table):
            problems.append(f"table {table}: {found.get(table, 'missing')} rows, the backup has {expected.get(table)}")
    return problems


def _occupied(database_url: str, storage: Storage, *, writes_objects: bool) -> list[str]:
    problems = []
    tables = pg.user_tables(database_url)
    if tables:
        problems.append(f"the database has {len(tables)} tables")
    # Without the objects in the backup, the storage is only read (it must hold them already).
    if writes_objects and next(iter(storage.list_objects()), None) is not None:
        problems.append("the storage holds objects")
    return problems


def restore_backup(settings: Settings, database_url: str, spec: str, *, force: bool) -> Outcome:
    """Restore the backup ``spec`` names into the database at ``database_url`` and the configured storage."""
    started = time.monotonic()
    target, name = locate(spec, settings)
    manifest = read_manifest(target, name)
    storage = make_storage(settings)
    occupied = _occupied(database_url, storage, writes_objects=manifest["objects"]["included"])
    if occupied and not force:
        raise NotEmpty(f"refusing to restore over existing data ({'; '.join(occupied)}); use --force to replace it")
    with tempfile.TemporaryDirectory(prefix="hearth-restore-") as scratch:
        dump = pathlib.Path(scratch) / DUMP
        _fetch_checked(target, name, manifest, DUMP, dump)
        objects = json.loads(target.read(name, OBJECTS))["objects"]
        if hashlib.sha256(target.read(name, OBJECTS)).hexdigest() != manifest["files"][OBJECTS]["sha256"]:
            raise BackupError(f"backup {name}: {OBJECTS} does not match its checksum in the manifest")
        if force:
            pg.reset_database(database_url)
        pg.restore(database_url, dump)
    if manifest["objects"]["included"]:
        restore_objects(target, name, objects, storage)
    problems = count_problems(manifest["tables"], pg.live_counts(database_url))
    problems += object_problems(objects, storage)
    return Outcome(name, manifest, problems, time.monotonic() - started)


def verify_backup(settings: Settings, database_url: str, spec: str) -> Outcome:
    """Restore into a scratch database (created, then dropped) and compare; the live data is only read."""
    started = time.monotonic()
    target, name = locate(spec, settings)
    manifest = read_manifest(target, name)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hearth-verify-") as scratch:
        dump = pathlib.Path(scratch) / DUMP
        _fetch_checked(target, name, manifest, DUMP, dump)
        raw = target.read(name, OBJECTS)
        if hashlib.sha256(raw).hexdigest() != manifest["files"][OBJECTS]["sha256"]:
            raise BackupError(f"backup {name}: {OBJECTS} does not match its checksum in the manifest")
        objects = json.loads(raw)["objects"]
        with pg.scratch_database(database_url) as scratch_url:
            pg.restore(scratch_url, dump)
            problems += count_problems(manifest["tables"], pg.live_counts(scratch_url))
    if manifest["objects"]["included"]:
        problems += backup_object_problems(target, name, objects)
    else:
        problems += object_problems(objects, make_storage(settings))
    return Outcome(name, manifest, problems, time.monotonic() - started)


__all__ = [
    "BackupError",
    "NotEmpty",
    "Outcome",
    "TargetError",
    "create_backup",
    "locate",
    "prune",
    "restore_backup",
    "verify_backup",
]
