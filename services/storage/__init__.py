"""Object storage behind one small interface: local disk (development) or any S3-compatible store.

Both backends offer the same calls; callers never know which one they hold:

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

import hashlib
import pathlib
from urllib.parse import parse_qsl, unquote, urlparse

from services.storage.local import LocalDiskStorage
from services.storage.objects import (
    CHUNK,
    QUARANTINE_PREFIX,
    InvalidKey,
    NotFound,
    StorageError,
    StorageUnavailable,
    StoredObject,
    TooLarge,
    check_key,
    content_disposition,
)
from services.storage.s3 import S3Storage


def sha256_of(storage, key: str) -> str:
    """The SHA-256 of the object at ``key`` as the store holds it now, read in chunks."""
    digest = hashlib.sha256()
    stream = storage.open(key)
    try:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    finally:
        stream.close()
    return digest.hexdigest()


def make_storage(settings, **options):
    """The backend named by ``STORAGE_URL``: empty (local disk under ``var/storage``), ``file://``, ``s3://``."""
    parsed = urlparse(settings.storage_url or "")
    if parsed.scheme == "s3":
        query = dict(parse_qsl(parsed.query))
        return S3Storage(
            parsed.hostname,
            endpoint=query.get("endpoint"),
            public_endpoint=query.get("public_endpoint"),
            region=query.get("region", "us-east-1"),
            addressing=query.get("addressing", "path"),
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


__all__ = [
    "QUARANTINE_PREFIX",
    "InvalidKey",
    "LocalDiskStorage",
    "NotFound",
    "S3Storage",
    "StorageError",
    "StorageUnavailable",
    "StoredObject",
    "TooLarge",
    "check_key",
    "content_disposition",
    "make_storage",
    "sha256_of",
]
