"""Object storage: local disk now, S3-compatible later, behind one small interface.

``put(key, source)`` stores bytes or a binary file object and returns a
``StoredObject`` (key, size, sha256); ``open(key)`` returns a binary file
object; ``delete(key)`` is idempotent; ``signed_url(key, ttl)`` returns a URL
anyone holding it can GET until it expires, and nobody can forge or extend.

The local-disk backend writes every object atomically (temporary file, then
rename) under one root directory, and serves signed URLs through the API's
``GET /v1/downloads/{key}?expires=&sig=`` route, which calls ``verify``.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import os
import pathlib
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlencode, urlparse

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
MAX_KEY_LENGTH = 512
_CHUNK = 1024 * 1024


class StorageError(Exception):
    pass


class NotFound(StorageError):
    pass


class InvalidKey(StorageError, ValueError):
    pass


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str

    def as_dict(self) -> dict:
        return {"key": self.key, "size": self.size, "sha256": self.sha256}


def check_key(key: str) -> str:
    """Keys are relative, slash-separated names without ``..`` or empty segments."""
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not KEY.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"not a storage key: {key!r}")
    return key


class LocalDiskStorage:
    """Objects as files under ``root``; signed URLs served by the API."""

    def __init__(self, root: pathlib.Path, *, public_url: str, secret: str, clock=time.time):
        self.root = pathlib.Path(root)
        self.public_url = public_url.rstrip("/")
        self._signing_key = hashlib.sha256(f"storage-url:{secret}".encode()).digest()
        self.clock = clock

    def _path(self, key: str) -> pathlib.Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, source) -> StoredObject:
        """Store ``source`` (bytes or a binary file object) under ``key``, replacing any older object."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as out:
                if isinstance(source, (bytes, bytearray, memoryview)):
                    chunks = [bytes(source)]
                else:
                    chunks = iter(lambda: source.read(_CHUNK), b"")
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())

    def open(self, key: str):
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(key) from None

    def get(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> bool:
        """Remove the object; False when there was none. Empty parent directories go too."""
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        return True

    # --- signed download URLs --------------------------------------------------------

    def _signature(self, key: str, expires: int) -> str:
        mac = hmac.new(self._signing_key, f"GET\n{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def signed_url(self, key: str, ttl: int) -> tuple[str, datetime.datetime]:
        """A URL that GETs ``key`` until ``ttl`` seconds from now; returns (url, expires_at)."""
        expires = int(self.clock()) + int(ttl)
        query = urlencode({"expires": expires, "sig": self._signature(check_key(key), expires)})
        url = f"{self.public_url}/v1/downloads/{quote(key, safe='/')}?{query}"
        return url, datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)

    def check(self, key: str, expires: int, sig: str) -> str:
        """``"ok"``, ``"expired"`` (a genuine link past ``expires``) or ``"invalid"`` (changed or forged)."""
        try:
            check_key(key)
        except InvalidKey:
            return "invalid"
        if not hmac.compare_digest(self._signature(key, int(expires)), sig):
            return "invalid"
        return "expired" if expires < self.clock() else "ok"

    def verify(self, key: str, expires: int, sig: str) -> bool:
        """True when ``sig`` was made by ``signed_url`` for ``key`` and ``expires`` has not passed."""
        return self.check(key, expires, sig) == "ok"


def make_storage(settings, **options) -> LocalDiskStorage:
    """The storage backend named by ``STORAGE_URL`` (empty: local disk under ``var/storage``)."""
    if settings.storage_url:
        parsed = urlparse(settings.storage_url)
        if parsed.scheme != "file":
            raise StorageError(f"unsupported STORAGE_URL scheme {parsed.scheme!r}")
        root = pathlib.Path(unquote(parsed.path))
    else:
        root = pathlib.Path(settings.var_dir) / "storage"
    return LocalDiskStorage(root, public_url=settings.public_url, secret=settings.secret_key, **options)


__all__ = ["LocalDiskStorage", "StoredObject", "StorageError", "NotFound", "InvalidKey", "check_key",
           "make_storage"]
