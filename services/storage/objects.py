"""What both stores share: the rules for keys, the record of a stored object, the errors, and the
metered reader every ``put`` streams its source through."""

from __future__ import annotations

import datetime
import hashlib
import io
import re
from dataclasses import dataclass
from typing import TypeAlias, TypedDict
from urllib.parse import quote

from services.streams import Readable

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
MAX_KEY_LENGTH = 512
QUARANTINE_PREFIX = "quarantine/"
CHUNK = 1024 * 1024

# What ``put`` stores: bytes, or a binary stream read in chunks.
Source: TypeAlias = bytes | bytearray | memoryview | Readable


class StorageError(Exception):
    pass


class NotFound(StorageError):
    pass


class InvalidKey(StorageError, ValueError):
    pass


class TooLarge(StorageError):
    """The source had more than ``max_bytes``; nothing was kept."""

    def __init__(self, max_bytes: int):
        super().__init__(f"more than {max_bytes} bytes")
        self.max_bytes = max_bytes


class StorageUnavailable(StorageError):
    """The store did not answer or failed on its side (5xx, timeout): worth trying again later."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, str | int]:
        return {"key": self.key, "size": self.size, "sha256": self.sha256}


class UploadTarget(TypedDict):
    """Where a client PUTs a file itself (``upload_target``): the request to make and until when."""

    method: str
    url: str
    headers: dict[str, str]
    expires_at: datetime.datetime


def check_key(key: str) -> str:
    """Keys are relative, slash-separated names without ``..`` or empty segments."""
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not KEY.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"not a storage key: {key!r}")
    return key


def signable(key: str) -> str:
    """``key`` if a signed URL may name it (never an unscanned, quarantined object)."""
    if check_key(key).startswith(QUARANTINE_PREFIX):
        raise InvalidKey(f"quarantined objects are never signed: {key!r}")
    return key


class Metered:
    """Reads a source in chunks, hashing and counting; raises ``TooLarge`` past ``max_bytes``."""

    def __init__(self, source: Source, max_bytes: int | None) -> None:
        self.source: Readable = (
            io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
        )
        self.max_bytes = max_bytes
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = CHUNK) -> bytes:
        chunk = self.source.read(size)
        if chunk:
            if self.max_bytes is not None and self.size + len(chunk) > self.max_bytes:
                raise TooLarge(self.max_bytes)
            self.size += len(chunk)
            self.digest.update(chunk)
        return chunk

    def read_full(self, size: int) -> bytes:
        """Up to ``size`` bytes, fewer only at the end of the source."""
        parts: list[bytes] = []
        wanted = size
        while wanted > 0:
            chunk = self.read(min(wanted, CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            wanted -= len(chunk)
        return b"".join(parts)

    def stored(self, key: str) -> StoredObject:
        return StoredObject(key=key, size=self.size, sha256=self.digest.hexdigest())


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''...`` (RFC 6266) for any display name."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename)[:150] or "file"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
