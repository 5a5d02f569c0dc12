"""The files of a Supabase project, read where they are: its S3-compatible endpoint, or a local export.

``SupabaseStorageSource`` is what the import needs of them: ``open(bucket, name)`` streams an
object's bytes (``ObjectMissing`` when the object row exists but its bytes do not), and
``copy_to(storage, bucket, name, key, max_bytes=)`` streams them into Hearth's storage without
holding the file in memory, answering what happened (``Copied``) instead of raising for the cases
an import reports (missing, too large).

* ``S3StorageSource``: Supabase Storage's S3 protocol (``https://<ref>.supabase.co/storage/v1/s3``),
  path-style addressing, with the project's S3 access keys; each Supabase bucket is an S3 bucket.
* ``DirectoryStorageSource``: an export on disk laid out ``DIR/<bucket>/<name>``.

Keys and endpoints come from settings; none of them is ever logged.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from services.storage import Storage, TooLarge
from services.streams import Readable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

COPIED, MISSING, TOO_LARGE = "copied", "missing", "too-large"


class ObjectMissing(Exception):
    """The object's bytes are not in the source."""


class StorageSourceError(Exception):
    """The source cannot be read (unreachable, refused credentials); the message holds no secret."""


@dataclass(frozen=True)
class Copied:
    """What ``copy_to`` did: ``status`` is ``copied`` (with ``size``/``sha256``), ``missing`` or ``too-large``."""

    status: str
    size: int | None = None
    sha256: str | None = None


class ClosableStream(Readable, Protocol):
    def close(self) -> None: ...


class SupabaseStorageSource(Protocol):
    name: str

    def open(self, bucket: str, name: str) -> ClosableStream: ...

    def exists(self, bucket: str, name: str) -> bool: ...

    def copy_to(self, storage: Storage, bucket: str, name: str, key: str, *, max_bytes: int) -> Copied: ...


def _copy(source: SupabaseStorageSource, storage: Storage, bucket: str, name: str, key: str, max_bytes: int) -> Copied:
    try:
        stream = source.open(bucket, name)
    except ObjectMissing:
        return Copied(MISSING)
    try:
        stored = storage.put(key, stream, max_bytes=max_bytes)
    except TooLarge:
        return Copied(TOO_LARGE)
    finally:
        stream.close()
    return Copied(COPIED, stored.size, stored.sha256)


class DirectoryStorageSource:
    """An export of the buckets on disk: ``root/<bucket>/<name>``."""

    name = "directory"

    def __init__(self, root: str | pathlib.Path):
        self.root = pathlib.Path(root).resolve()
        if not self.root.is_dir():
            raise StorageSourceError(f"storage export {self.root} is not a directory")

    def _path(self, bucket: str, name: str) -> pathlib.Path:
        path = (self.root / bucket / name).resolve()
        # An object name is the source's data: it must not lead out of the export.
        if not path.is_relative_to(self.root / bucket) or bucket in ("", ".", ".."):
            raise ObjectMissing(f"{bucket}/{name}")
        return path

    def open(self, bucket: str, name: str) -> ClosableStream:
        path = self._path(bucket, name)
        if not path.is_file():
            raise ObjectMissing(f"{bucket}/{name}")
        return path.open("rb")

    def exists(self, bucket: str, name: str) -> bool:
        try:
            return self._path(bucket, name).is_file()
        except ObjectMissing:
            return False

    def copy_to(self, storage: Storage, bucket: str, name: str, key: str, *, max_bytes: int) -> Copied:
        return _copy(self, storage, bucket, name, key, max_bytes)


class S3StorageSource:
    """Supabase Storage through its S3-compatible endpoint (path-style addressing)."""

    name = "s3"

    def __init__(self, endpoint: str, *, region: str, access_key: str, secret_key: str, session_token: str = ""):
        import boto3
        from botocore.config import Config

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=config,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            aws_session_token=session_token or None,
        )

    def _call(self, method: Any, bucket: str, name: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return method(Bucket=bucket, Key=name, **params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if error.get("Code") in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
                raise ObjectMissing(f"{bucket}/{name}") from None
            raise StorageSourceError(f"Supabase Storage answered {error.get('Code') or status}") from None
        except BotoCoreError as exc:
            raise StorageSourceError(f"Supabase Storage is unreachable ({type(exc).__name__})") from None

    def open(self, bucket: str, name: str) -> ClosableStream:
        body: ClosableStream = self._call(self.client.get_object, bucket, name)["Body"]
        return body

    def exists(self, bucket: str, name: str) -> bool:
        try:
            self._call(self.client.head_object, bucket, name)
        except ObjectMissing:
            return False
        return True

    def copy_to(self, storage: Storage, bucket: str, name: str, key: str, *, max_bytes: int) -> Copied:
        return _copy(self, storage, bucket, name, key, max_bytes)


def make_storage_source(
    *,
    endpoint: str | None = None,
    directory: str | None = None,
    region: str = "us-east-1",
    access_key: str = "",
    secret_key: str = "",
) -> SupabaseStorageSource | None:
    """The source the options name (``--storage-endpoint`` or ``--storage-dir``), or None for neither."""
    if endpoint and directory:
        raise StorageSourceError("give either a storage endpoint or a storage directory, not both")
    if directory:
        return DirectoryStorageSource(directory)
    if endpoint:
        return S3StorageSource(endpoint, region=region, access_key=access_key, secret_key=secret_key)
    return None


__all__ = [
    "COPIED",
    "MISSING",
    "TOO_LARGE",
    "Copied",
    "DirectoryStorageSource",
    "ObjectMissing",
    "S3StorageSource",
    "StorageSourceError",
    "SupabaseStorageSource",
    "make_storage_source",
]
