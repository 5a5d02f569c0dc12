"""The object-storage half of a backup: every stored object's key, size and SHA-256, and the bytes if asked.

Storage is not transactional with the database, so the object list is taken right after the dump:
an object a row of the dump names was stored before the row committed (uploads are written first,
then their row), so it is in the list. Objects written after the snapshot may be listed too; they
are harmless extras on restore.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from ops.backup_target import Target
from services.storage import CHUNK, NotFound, Storage, sha256_of

OBJECTS_DIR = "objects"


class _Hashing:
    """A stream that hashes what is read through it, so copying an object also checksums it."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = CHUNK) -> bytes:
        chunk = self.stream.read(size)
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk


def snapshot_objects(
    storage: Storage, target: Target | None = None, name: str = "", progress: Callable[[int], None] = lambda n: None
) -> list[dict]:
    """``[{key, size, sha256}]`` of every stored object; with ``target``, each is copied into the backup too."""
    listed = []
    for count, (key, _size) in enumerate(storage.list_objects(), start=1):
        try:
            if target is None:
                listed.append({"key": key, "size": storage.size(key), "sha256": sha256_of(storage, key)})
            else:
                stream = storage.open(key)
                try:
                    hashing = _Hashing(stream)
                    target.put(name, f"{OBJECTS_DIR}/{key}", hashing)
                finally:
                    stream.close()
                listed.append({"key": key, "size": hashing.size, "sha256": hashing.digest.hexdigest()})
        except NotFound:
            continue  # deleted between the listing and the read: not part of this backup
        progress(count)
    return listed


def restore_objects(target: Target, name: str, objects: list[dict], storage: Storage) -> int:
    """Copy the backup's objects into ``storage``; returns how many."""
    for item in objects:
        stream = target.open(name, f"{OBJECTS_DIR}/{item['key']}")
        try:
            storage.put(item["key"], stream)
        finally:
            stream.close()
    return len(objects)


def object_problems(objects: list[dict], storage: Storage) -> list[str]:
    """Where ``storage`` differs from the manifest's objects: missing, or other bytes."""
    problems = []
    for item in objects:
        key = item["key"]
        try:
            digest = sha256_of(storage, key)
        except NotFound:
            problems.append(f"object {key}: missing")
            continue
        if digest != item["sha256"]:
            problems.append(f"object {key}: sha256 {digest[:12]}… is not the backup's {item['sha256'][:12]}…")
    return problems


def backup_object_problems(target: Target, name: str, objects: list[dict]) -> list[str]:
    """Objects in the backup itself whose bytes are not those the manifest lists (tampered or damaged)."""
    problems = []
    for item in objects:
        path = f"{OBJECTS_DIR}/{item['key']}"
        if not target.exists(name, path):
            problems.append(f"backup object {item['key']}: missing")
            continue
        stream = target.open(name, path)
        try:
            hashing = _Hashing(stream)
            while hashing.read(CHUNK):
                pass
        finally:
            stream.close()
        if hashing.digest.hexdigest() != item["sha256"]:
            problems.append(f"backup object {item['key']}: sha256 differs from the manifest")
    return problems
