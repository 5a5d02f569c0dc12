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

Local disk writes every object atomically (temporary file, then rename) under
one root, serves signed GETs through the API's ``GET /v1/downloads/{key}``
(``check``) and signed PUTs through ``PUT /v1/uploads/{id}/content``
(``check_upload``). S3 uses presigned URLs; a part of at most ``part_size``
bytes is held in memory while a large object goes up as a multipart upload.
Keys are always chosen by the server (``check_key``).
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import io
import os
import pathlib
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlparse

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
MAX_KEY_LENGTH = 512
QUARANTINE_PREFIX = "quarantine/"
_CHUNK = 1024 * 1024
S3_PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB; this is what one upload holds in memory


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

    def as_dict(self) -> dict:
        return {"key": self.key, "size": self.size, "sha256": self.sha256}


def check_key(key: str) -> str:
    """Keys are relative, slash-separated names without ``..`` or empty segments."""
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not KEY.match(key) or ".." in key.split("/"):
        raise InvalidKey(f"not a storage key: {key!r}")
    return key


def _signable(key: str) -> str:
    if check_key(key).startswith(QUARANTINE_PREFIX):
        raise InvalidKey(f"quarantined objects are never signed: {key!r}")
    return key


class _Metered:
    """Reads a source in chunks, hashing and counting; raises ``TooLarge`` past ``max_bytes``."""

    def __init__(self, source, max_bytes: int | None):
        if isinstance(source, (bytes, bytearray, memoryview)):
            source = io.BytesIO(bytes(source))
        self.source = source
        self.max_bytes = max_bytes
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, size: int = _CHUNK) -> bytes:
        chunk = self.source.read(size)
        if chunk:
            if self.max_bytes is not None and self.size + len(chunk) > self.max_bytes:
                raise TooLarge(self.max_bytes)
            self.size += len(chunk)
            self.digest.update(chunk)
        return chunk

    def read_full(self, size: int) -> bytes:
        """Up to ``size`` bytes, fewer only at the end of the source."""
        parts, wanted = [], size
        while wanted > 0:
            chunk = self.read(min(wanted, _CHUNK))
            if not chunk:
                break
            parts.append(chunk)
            wanted -= len(chunk)
        return b"".join(parts)

    def stored(self, key: str) -> StoredObject:
        return StoredObject(key=key, size=self.size, sha256=self.digest.hexdigest())


class _Signer:
    def __init__(self, secret: str, clock):
        self._key = hashlib.sha256(f"storage-url:{secret}".encode()).digest()
        self.clock = clock

    def sign(self, *parts) -> str:
        mac = hmac.new(self._key, "\n".join(str(p) for p in parts).encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def check(self, sig: str, expires: int, *parts) -> str:
        # compare_digest refuses a str holding non-ASCII characters; a signature never holds one.
        if not sig.isascii() or not hmac.compare_digest(self.sign(*parts, int(expires)), sig):
            return "invalid"
        return "expired" if expires < self.clock() else "ok"


class LocalDiskStorage:
    """Objects as files under ``root``; signed URLs served by the API."""

    name = "local"

    def __init__(self, root: pathlib.Path, *, public_url: str, secret: str, clock=time.time):
        self.root = pathlib.Path(root)
        self.public_url = public_url.rstrip("/")
        self._signer = _Signer(secret, clock)
        self.clock = clock

    def _path(self, key: str) -> pathlib.Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put(self, key: str, source, *, max_bytes: int | None = None, content_type: str | None = None) -> StoredObject:
        """Store ``source`` (bytes or a binary file object) under ``key``, replacing any older object."""
        path = self._path(key)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        reader = _Metered(source, max_bytes)
        try:
            with self._create(tmp) as out:
                for chunk in iter(lambda: reader.read(_CHUNK), b""):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return reader.stored(key)

    def open(self, key: str):
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
    def _create(path: pathlib.Path):
        """A new file opened for writing; its directory is made again should a concurrent prune remove it
        between ``mkdir`` and ``open`` (every intent's upload shares ``quarantine/incoming/``)."""
        for attempt in range(5):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)  # EEXIST, then pruned: FileExistsError
                return open(path, "wb")
            except (FileNotFoundError, FileExistsError):
                if attempt == 4:
                    raise

    # --- signed URLs -------------------------------------------------------------------

    def signed_url(self, key: str, ttl: int, *, filename: str | None = None, content_type: str | None = None,
                   inline: bool = False) -> tuple[str, datetime.datetime]:
        """A URL that GETs ``key`` until ``ttl`` seconds from now; returns (url, expires_at).

        The download route names the file after the key's last segment, so
        ``filename``/``content_type`` are only used by S3.
        """
        expires = int(self.clock()) + int(ttl)
        query = urlencode({"expires": expires, "sig": self._signer.sign("GET", _signable(key), expires)})
        url = f"{self.public_url}/v1/downloads/{quote(key, safe='/')}?{query}"
        return url, datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)

    def check(self, key: str, expires: int, sig: str) -> str:
        """``"ok"``, ``"expired"`` (a genuine link past ``expires``) or ``"invalid"`` (changed or forged)."""
        try:
            _signable(key)
        except InvalidKey:
            return "invalid"
        return self._signer.check(sig, expires, "GET", key)

    def verify(self, key: str, expires: int, sig: str) -> bool:
        """True when ``sig`` was made by ``signed_url`` for ``key`` and ``expires`` has not passed."""
        return self.check(key, expires, sig) == "ok"

    def upload_target(self, key: str, ttl: int, *, size: int, content_type: str, path: str) -> dict:
        """A signed ``PUT {public_url}{path}`` for exactly ``size`` bytes of ``content_type`` into ``key``."""
        expires = int(self.clock()) + int(ttl)
        sig = self._signer.sign("PUT", check_key(key), size, content_type, expires)
        return {"method": "PUT", "url": f"{self.public_url}{path}?{urlencode({'expires': expires, 'sig': sig})}",
                "headers": {"Content-Type": content_type},
                "expires_at": datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)}

    def check_upload(self, key: str, size: int, content_type: str, expires: int, sig: str) -> str:
        """``"ok"``, ``"expired"`` or ``"invalid"`` for a URL made by ``upload_target``."""
        return self._signer.check(sig, expires, "PUT", key, size, content_type)


class S3Storage:
    """Objects in one bucket of any S3-compatible store (AWS, MinIO, Ceph, moto...)."""

    name = "s3"

    def __init__(self, bucket: str, *, endpoint: str | None = None, public_endpoint: str | None = None,
                 region: str = "us-east-1", addressing: str = "path", access_key: str = "", secret_key: str = "",
                 session_token: str = "", part_size: int = S3_PART_SIZE, clock=time.time):
        from botocore.config import Config

        self.bucket = bucket
        self.part_size = part_size
        self.clock = clock
        config = Config(signature_version="s3v4", s3={"addressing_style": addressing}, connect_timeout=5,
                        read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
        options = dict(region_name=region, config=config, aws_access_key_id=access_key or None,
                       aws_secret_access_key=secret_key or None, aws_session_token=session_token or None)
        self.client = _s3_client(endpoint_url=endpoint or None, **options)
        # URLs handed to clients name the address they can reach (it may differ from ours).
        self.presigner = _s3_client(endpoint_url=public_endpoint, **options) if public_endpoint else self.client

    def _call(self, method, key: str | None = None, **params):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(Bucket=self.bucket, **({"Key": key} if key is not None else {}), **params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if error.get("Code") in ("NoSuchKey", "404", "NotFound") or status == 404:
                raise NotFound(key) from None
            if status >= 500 or error.get("Code") in ("SlowDown", "RequestTimeout", "ServiceUnavailable"):
                raise StorageUnavailable(f"S3 {error.get('Code')}") from None
            raise StorageError(f"S3 {error.get('Code')}: {error.get('Message')}") from None
        except BotoCoreError as exc:  # connection refused, timeouts, ...
            raise StorageUnavailable(type(exc).__name__) from None

    def create_bucket(self) -> None:
        """Make the bucket if it does not exist (tests and development)."""
        try:
            self._call(self.client.head_bucket)
        except (NotFound, StorageError):
            self._call(self.client.create_bucket)

    def put(self, key: str, source, *, max_bytes: int | None = None, content_type: str | None = None) -> StoredObject:
        check_key(key)
        reader = _Metered(source, max_bytes)
        extra = {"ContentType": content_type} if content_type else {}
        first = reader.read_full(self.part_size)
        if len(first) < self.part_size:
            self._call(self.client.put_object, key, Body=first, **extra)
            return reader.stored(key)
        upload_id = self._call(self.client.create_multipart_upload, key, **extra)["UploadId"]
        try:
            parts, chunk, number = [], first, 1
            while chunk:
                answer = self._call(self.client.upload_part, key, UploadId=upload_id, PartNumber=number, Body=chunk)
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                chunk, number = None, number + 1  # let the finished part go before reading the next
                chunk = reader.read_full(self.part_size)
            self._call(self.client.complete_multipart_upload, key, UploadId=upload_id,
                       MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self._call(self.client.abort_multipart_upload, key, UploadId=upload_id)
            except StorageError:
                pass  # the bucket's lifecycle rule for incomplete uploads cleans up
            raise
        return reader.stored(key)

    def open(self, key: str):
        return self._call(self.client.get_object, check_key(key))["Body"]

    def head_bytes(self, key: str, count: int) -> bytes:
        if self.size(key) == 0:
            return b""
        body = self._call(self.client.get_object, check_key(key), Range=f"bytes=0-{count - 1}")["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def get(self, key: str) -> bytes:
        body = self.open(key)
        try:
            return body.read()
        finally:
            body.close()

    def size(self, key: str) -> int:
        return int(self._call(self.client.head_object, check_key(key))["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> bool:
        self._call(self.client.delete_object, check_key(key))
        return True

    def move(self, source: str, target: str) -> None:
        # Server-side copy: the bytes never pass through us. Copies above 5 GB need a
        # multipart copy, far above every upload cap.
        self._call(self.client.copy_object, check_key(target),
                   CopySource={"Bucket": self.bucket, "Key": check_key(source)})
        self.delete(source)

    def signed_url(self, key: str, ttl: int, *, filename: str | None = None, content_type: str | None = None,
                   inline: bool = False) -> tuple[str, datetime.datetime]:
        params = {"Bucket": self.bucket, "Key": _signable(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename, inline=inline)
        if content_type:
            params["ResponseContentType"] = content_type
        url = self.presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=int(ttl))
        return url, datetime.datetime.fromtimestamp(int(self.clock()) + int(ttl), datetime.timezone.utc)

    def check(self, key: str, expires: int, sig: str) -> str:
        """Links to S3 objects are presigned by S3 itself; the API's download route serves none."""
        return "invalid"

    def upload_target(self, key: str, ttl: int, *, size: int, content_type: str, path: str) -> dict:
        """A presigned PUT with the length and type signed in: S3 refuses any other body."""
        url = self.presigner.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": check_key(key), "ContentLength": size,
                                  "ContentType": content_type}, ExpiresIn=int(ttl))
        return {"method": "PUT", "url": url, "headers": {"Content-Type": content_type},
                "expires_at": datetime.datetime.fromtimestamp(int(self.clock()) + int(ttl), datetime.timezone.utc)}

    def check_upload(self, key: str, size: int, content_type: str, expires: int, sig: str) -> str:
        return "invalid"


_session = None
_session_lock = threading.Lock()


def _s3_client(**options):
    """An S3 client from one shared session: a session parses botocore's service models once."""
    global _session
    import boto3

    with _session_lock:  # sessions are not thread-safe; the clients they make are
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", **options)


def sha256_of(storage, key: str) -> str:
    """The SHA-256 of the object at ``key`` as the store holds it now, read in chunks."""
    digest = hashlib.sha256()
    stream = storage.open(key)
    try:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    finally:
        stream.close()
    return digest.hexdigest()


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''...`` (RFC 6266) for any display name."""
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", filename)[:150] or "file"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def make_storage(settings, **options):
    """The backend named by ``STORAGE_URL``: empty (local disk under ``var/storage``), ``file://``, ``s3://``."""
    parsed = urlparse(settings.storage_url or "")
    if parsed.scheme == "s3":
        query = dict(parse_qsl(parsed.query))
        return S3Storage(parsed.hostname, endpoint=query.get("endpoint"),
                         public_endpoint=query.get("public_endpoint"), region=query.get("region", "us-east-1"),
                         addressing=query.get("addressing", "path"), access_key=settings.aws_access_key_id,
                         secret_key=settings.aws_secret_access_key, session_token=settings.aws_session_token,
                         **options)
    if parsed.scheme == "file":
        root = pathlib.Path(unquote(parsed.path))
    elif not parsed.scheme:
        root = pathlib.Path(settings.var_dir) / "storage"
    else:
        raise StorageError(f"unsupported STORAGE_URL scheme {parsed.scheme!r}")
    return LocalDiskStorage(root, public_url=settings.public_url, secret=settings.secret_key, **options)


__all__ = ["LocalDiskStorage", "S3Storage", "StoredObject", "StorageError", "StorageUnavailable", "NotFound",
           "InvalidKey", "TooLarge", "QUARANTINE_PREFIX", "check_key", "content_disposition", "make_storage",
           "sha256_of"]
