"""Objects as files under one directory (development, tests, a single host).

Every object is written atomically (a temporary file, then a rename). Signed
GETs are served by the API's ``GET /v1/downloads/{key}`` (``check``) and signed
PUTs by ``PUT /v1/uploads/{id}/content`` (``check_upload``), both signed with
``SECRET_KEY`` under the purpose ``storage-url`` (``services.signing``).
"""

from __future__ import annotations

import datetime
import io
import os
import pathlib
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlencode

from services.signing import Part, Signer
from services.storage.objects import (
    CHUNK,
    InvalidKey,
    Metered,
    NotFound,
    Source,
    StoredObject,
    UploadTarget,
    check_key,
    signable,
)

URL_PURPOSE = "storage-url"


class LocalDiskStorage:
    """Objects as files under ``root``; signed URLs served by the API."""

    name = "local"

    def __init__(
        self, root: pathlib.Path, *, public_url: str, secret: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.root = pathlib.Path(root)
        self.public_url = public_url.rstrip("/")
        self._signer = Signer(secret)
        self.clock = clock

    def _path(self, key: str) -> pathlib.Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(
        self, key: str, source: Source, *, max_bytes: int | None = None, content_type: str | None = None
    ) -> StoredObject:
        """Store ``source`` (bytes or a binary file object) under ``key``, replacing any older object."""
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        reader = Metered(source, max_bytes)
        try:
            with self._create(tmp) as out:
                for chunk in iter(lambda: reader.read(CHUNK), b""):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return reader.stored(key)

    def open(self, key: str) -> io.BufferedReader:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(key) from None

    def head_bytes(self, key: str, count: int) -> bytes:
        with self.open(key) as fh:
            return fh.read(count)

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

    def list_objects(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Every object's ``(key, size)`` under ``prefix``, in key order (files being written are not objects yet)."""
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix) and path.is_file() and not path.name.startswith("."):
                yield key, path.stat().st_size

    def delete(self, key: str) -> bool:
        """Remove the object; False when there was none. Empty parent directories go too."""
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self._prune(path.parent)
        return True

    def _prune(self, parent: pathlib.Path) -> None:
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def move(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target`` (replacing it); ``NotFound`` when ``source`` is gone."""
        src, dst = self._path(source), self._path(target)
        for attempt in range(5):
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                break
            except (FileNotFoundError, FileExistsError):
                if not src.exists():
                    raise NotFound(source) from None
                # The target's directory was pruned by a concurrent delete or move: make it again.
                if attempt == 4:
                    raise
        self._prune(src.parent)

    @staticmethod
    def _create(path: pathlib.Path) -> io.BufferedWriter:
        """A new file opened for writing; its directory is made again should a concurrent prune remove it
        between ``mkdir`` and ``open`` (every intent's upload shares ``quarantine/incoming/``)."""
        attempts = 5
        while True:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)  # EEXIST, then pruned: FileExistsError
                return open(path, "wb")
            except (FileNotFoundError, FileExistsError):
                attempts -= 1
                if not attempts:
                    raise

    # --- signed URLs -------------------------------------------------------------------

    def signed_url(
        self, key: str, ttl: int, *, filename: str | None = None, content_type: str | None = None, inline: bool = False
    ) -> tuple[str, datetime.datetime]:
        """A URL that GETs ``key`` until ``ttl`` seconds from now; returns (url, expires_at).

        The download route names the file after the key's last segment, so
        ``filename``/``content_type`` are only used by S3.
        """
        expires = int(self.clock()) + int(ttl)
        query = urlencode({"expires": expires, "sig": self._signer.text(URL_PURPOSE, "GET", signable(key), expires)})
        url = f"{self.public_url}/v1/downloads/{quote(key, safe='/')}?{query}"
        return url, datetime.datetime.fromtimestamp(expires, datetime.UTC)

    def check(self, key: str, expires: int, sig: str) -> str:
        """``"ok"``, ``"expired"`` (a genuine link past ``expires``) or ``"invalid"`` (changed or forged)."""
        try:
            signable(key)
        except InvalidKey:
            return "invalid"
        return self._check(sig, expires, "GET", key)

    def verify(self, key: str, expires: int, sig: str) -> bool:
        """True when ``sig`` was made by ``signed_url`` for ``key`` and ``expires`` has not passed."""
        return self.check(key, expires, sig) == "ok"

    def upload_target(self, key: str, ttl: int, *, size: int, content_type: str, path: str) -> UploadTarget:
        """A signed ``PUT {public_url}{path}`` for exactly ``size`` bytes of ``content_type`` into ``key``."""
        expires = int(self.clock()) + int(ttl)
        sig = self._signer.text(URL_PURPOSE, "PUT", check_key(key), size, content_type, expires)
        return {
            "method": "PUT",
            "url": f"{self.public_url}{path}?{urlencode({'expires': expires, 'sig': sig})}",
            "headers": {"Content-Type": content_type},
            "expires_at": datetime.datetime.fromtimestamp(expires, datetime.UTC),
        }

    def check_upload(self, key: str, size: int, content_type: str, expires: int, sig: str) -> str:
        """``"ok"``, ``"expired"`` or ``"invalid"`` for a URL made by ``upload_target``."""
        return self._check(sig, expires, "PUT", key, size, content_type)

    def _check(self, sig: str, expires: int, *parts: Part) -> str:
        if not self._signer.verify(URL_PURPOSE, sig, *parts, int(expires)):
            return "invalid"
        return "expired" if expires < self.clock() else "ok"
