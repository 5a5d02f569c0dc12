"""Object storage behind one small interface: local disk (development) or any S3-compatible store.

Both backends offer the same calls (``Storage``); callers never know which one they hold:

* ``put(key, source, max_bytes=, content_type=)`` streams bytes or a binary file
  object into ``key`` and returns a ``StoredObject`` (key, size, sha256). The
  source is read in chunks, never whole; past ``max_bytes`` it stops reading,
  removes what it wrote and raises ``TooLarge``.
* ``open(key)`` (a readable binary stream), ``head_bytes``, ``get``, ``size``,
  ``exists``, ``delete`` (idempotent) and ``move`` (within the store).
* ``signed_url(key, ttl)`` → ``(url, expires_at)``: a GET anyone holding it may
  use until it expires, which nobody can forge or extend. Keys under
  ``quarantine/`` are never signed: an unscanned file cannot be handed out.
* ``upload_target(key, ttl, size=, content_type=, path=)``: where a client PUTs
  a large file itself, bound to that size and type.

Local disk (``services/storage/local.py``) writes every object atomically under one
root and serves signed URLs through the API; S3 (``services/storage/s3.py``)
uses presigned URLs and multipart uploads. What both share, keys (always chosen
by the server, ``check_key``), ``StoredObject`` and the errors, is in
``services/storage/objects.py``; callers import all of it from ``services.storage``.
"""

from __future__ import annotations

import datetime
import hashlib
import pathlib
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import parse_qsl, unquote, urlparse

from services.storage.local import LocalDiskStorage
from services.storage.objects import (
    CHUNK,
    QUARANTINE_PREFIX,
    InvalidKey,
    NotFound,
    Source,
    StorageError,
    StorageUnavailable,
    StoredObject,
    TooLarge,
    UploadTarget,
    check_key,
    content_disposition,
)
from services.storage.s3 import Addressing, S3Storage
from services.streams import Readable
from settings import Settings


class ObjectStream(Readable, Protocol):
    """A stored object opened for reading (``open``): read in chunks, then closed (or used in ``with``)."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None, /
    ) -> None: ...


class Storage(Protocol):
    """What every store offers (see the module's description); ``LocalDiskStorage`` and ``S3Storage`` do."""

    def put(
        self, key: str, source: Source, *, max_bytes: int | None = None, content_type: str | None = None
    ) -> StoredObject: ...

    def open(self, key: str) -> ObjectStream: ...

    def head_bytes(self, key: str, count: int) -> bytes: ...

    def get(self, key: str) -> bytes: ...

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def list_objects(self, prefix: str = "") -> Iterator[tuple[str, int]]: ...

    def delete(self, key: str) -> bool: ...

    def move(self, source: str, target: str) -> None: ...

    def signed_url(
        self, key: str, ttl: int, *, filename: str | None = None, content_type: str | None = None, inline: bool = False
    ) -> tuple[str, datetime.datetime]: ...

    def check(self, key: str, expires: int, sig: str) -> str: ...

    def upload_target(self, key: str, ttl: int, *, size: int, content_type: str, path: str) -> UploadTarget: ...

    def check_upload(self, key: str, size: int, content_type: str, expires: int, sig: str) -> str: ...


def sha256_of(storage: Storage, key: str) -> str:
    """The SHA-256 of the object at ``key`` as the store holds it now, read in chunks."""
    digest = hashlib.sha256()
    stream = storage.open(key)
    try:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    finally:
        stream.close()
    return digest.hexdigest()


def make_storage(settings: Settings, **options: Any) -> Storage:
    """The backend named by ``STORAGE_URL``: empty (local disk under ``var/storage``), ``file://``, ``s3://``.

    ``options`` go to the backend's constructor (``clock``, and ``part_size`` for S3).
    """
    parsed = urlparse(settings.storage_url or "")
    if parsed.scheme == "s3":
        if not parsed.hostname:
            raise StorageError("STORAGE_URL: s3:// needs a bucket name")
        query = dict(parse_qsl(parsed.query))
        return S3Storage(
            parsed.hostname,
            endpoint=query.get("endpoint"),
            public_endpoint=query.get("public_endpoint"),
            region=query.get("region", "us-east-1"),
            addressing=_addressing(query.get("addressing", "path")),
            access_key=settings.aws_access_key_id,
            secret_key=settings.aws_secret_access_key,
            session_token=settings.aws_session_token,
            **options,
        )
    if parsed.scheme == "file":
        root = pathlib.Path(unquote(parsed.path))
    elif not parsed.scheme:
        root = pathlib.Path(settings.var_dir) / "storage"
    else:
        raise StorageError(f"unsupported STORAGE_URL scheme {parsed.scheme!r}")
    return LocalDiskStorage(root, public_url=settings.public_url, secret=settings.secret_key, **options)


def _addressing(value: str) -> Addressing:
    match value:
        case "path" | "virtual" | "auto":
            return value
    raise StorageError(f"STORAGE_URL: unsupported addressing {value!r}")


__all__ = [
    "QUARANTINE_PREFIX",
    "InvalidKey",
    "LocalDiskStorage",
    "NotFound",
    "ObjectStream",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "StoredObject",
    "TooLarge",
    "check_key",
    "content_disposition",
    "make_storage",
    "sha256_of",
]
