"""Where backups are kept: a directory, or a prefix of an S3 bucket (``s3://bucket/prefix``).

Each backup is a folder named by its UTC start time (``20261207T031500Z``) holding ``database.dump``,
``objects.json``, the objects themselves under ``objects/`` when included, and, written last,
``manifest.json``: a folder without the manifest is an incomplete backup (a run that died), never
restored from, never counted by retention, and removed by the next run.

``s3://bucket/prefix?endpoint=http://host:9000&region=eu-west-1`` takes the same query options as
``STORAGE_URL`` and the same ``AWS_*`` credentials.
"""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Iterator
from typing import Protocol
from urllib.parse import parse_qsl, urlparse

from services.storage import S3Storage, Source, StorageError
from settings import Settings

MANIFEST = "manifest.json"


class TargetError(Exception):
    """The backup location is malformed or cannot be used."""


class Target(Protocol):
    """Files of named backups in one place."""

    description: str

    def names(self) -> list[str]: ...

    def files(self, name: str) -> Iterator[str]: ...

    def put(self, name: str, path: str, source: Source) -> None: ...

    def put_file(self, name: str, path: str, local: pathlib.Path) -> None: ...

    def get_file(self, name: str, path: str, local: pathlib.Path) -> None: ...

    def read(self, name: str, path: str) -> bytes: ...

    def exists(self, name: str, path: str) -> bool: ...

    def open(self, name: str, path: str): ...

    def remove(self, name: str) -> None: ...


class DirectoryTarget:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.description = str(root)

    def _path(self, name: str, path: str) -> pathlib.Path:
        return self.root / name / path

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def files(self, name: str) -> Iterator[str]:
        base = self.root / name
        for path in sorted(base.rglob("*")):
            if path.is_file():
                yield path.relative_to(base).as_posix()

    def put(self, name: str, path: str, source: Source) -> None:
        target = self._path(name, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            if isinstance(source, (bytes, bytearray, memoryview)):
                out.write(source)
            else:
                shutil.copyfileobj(source, out, 1024 * 1024)

    def put_file(self, name: str, path: str, local: pathlib.Path) -> None:
        target = self._path(name, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)

    def get_file(self, name: str, path: str, local: pathlib.Path) -> None:
        shutil.copyfile(self._path(name, path), local)

    def read(self, name: str, path: str) -> bytes:
        return self._path(name, path).read_bytes()

    def exists(self, name: str, path: str) -> bool:
        return self._path(name, path).is_file()

    def open(self, name: str, path: str):
        return open(self._path(name, path), "rb")

    def remove(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)


class S3Target:
    def __init__(self, store: S3Storage, prefix: str, description: str) -> None:
        self.store = store
        self.prefix = prefix.strip("/")
        self.description = description

    def _key(self, name: str, path: str = "") -> str:
        return "/".join(part for part in (self.prefix, name, path) if part)

    def names(self) -> list[str]:
        base = self._key("") + "/" if self.prefix else ""
        return sorted(
            {key[len(base) :].split("/", 1)[0] for key, _ in self.store.list_objects(base) if "/" in key[len(base) :]}
        )

    def files(self, name: str) -> Iterator[str]:
        base = self._key(name) + "/"
        for key, _ in self.store.list_objects(base):
            yield key[len(base) :]

    def put(self, name: str, path: str, source: Source) -> None:
        self.store.put(self._key(name, path), source)

    def put_file(self, name: str, path: str, local: pathlib.Path) -> None:
        with open(local, "rb") as handle:
            self.store.put(self._key(name, path), handle)

    def get_file(self, name: str, path: str, local: pathlib.Path) -> None:
        with self.store.open(self._key(name, path)) as stream, open(local, "wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)

    def read(self, name: str, path: str) -> bytes:
        return self.store.get(self._key(name, path))

    def exists(self, name: str, path: str) -> bool:
        return self.store.exists(self._key(name, path))

    def open(self, name: str, path: str):
        return self.store.open(self._key(name, path))

    def remove(self, name: str) -> None:
        for key, _ in list(self.store.list_objects(self._key(name) + "/")):
            self.store.delete(key)


def open_target(spec: str, settings: Settings) -> DirectoryTarget | S3Target:
    """The target named by ``spec``: a directory path, or ``s3://bucket/prefix[?endpoint=...]``."""
    if not spec:
        raise TargetError("no backup location given")
    parsed = urlparse(spec)
    if parsed.scheme == "s3":
        if not parsed.hostname:
            raise TargetError(f"{spec}: s3:// needs a bucket name")
        query = dict(parse_qsl(parsed.query))
        try:
            store = S3Storage(
                parsed.hostname,
                endpoint=query.get("endpoint"),
                region=query.get("region", "us-east-1"),
                access_key=settings.aws_access_key_id,
                secret_key=settings.aws_secret_access_key,
                session_token=settings.aws_session_token,
            )
        except StorageError as exc:
            raise TargetError(f"{spec}: {exc}") from None
        return S3Target(store, parsed.path, f"s3://{parsed.hostname}{parsed.path}")
    if parsed.scheme in ("", "file"):
        return DirectoryTarget(pathlib.Path(parsed.path if parsed.scheme else spec).resolve())
    raise TargetError(f"{spec}: a backup location is a directory or s3://bucket/prefix")
