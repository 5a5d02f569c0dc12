"""Objects in one bucket of any S3-compatible store (production).

Links are presigned by S3 itself. A part of at most ``part_size`` bytes is
held in memory while a large object goes up as a multipart upload.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

from services.storage.objects import (
    Metered,
    NotFound,
    Source,
    StorageError,
    StorageUnavailable,
    StoredObject,
    UploadTarget,
    check_key,
    content_disposition,
    signable,
)

if TYPE_CHECKING:
    import boto3
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

S3_PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB; this is what one upload holds in memory
# How requests name the bucket: botocore's ``addressing_style``.
Addressing: TypeAlias = Literal["auto", "virtual", "path"]
_Answer = TypeVar("_Answer")


class S3Storage:
    """Objects in one bucket of any S3-compatible store (AWS, MinIO, Ceph, moto...)."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None = None,
        public_endpoint: str | None = None,
        region: str = "us-east-1",
        addressing: Addressing = "path",
        access_key: str = "",
        secret_key: str = "",
        session_token: str = "",
        part_size: int = S3_PART_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from botocore.config import Config

        self.bucket = bucket
        self.part_size = part_size
        self.clock = clock
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing},
            connect_timeout=5,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        options = {
            "region_name": region,
            "config": config,
            "aws_access_key_id": access_key or None,
            "aws_secret_access_key": secret_key or None,
            "aws_session_token": session_token or None,
        }
        self.client = _s3_client(endpoint_url=endpoint or None, **options)
        # URLs handed to clients name the address they can reach (it may differ from ours).
        self.presigner = _s3_client(endpoint_url=public_endpoint, **options) if public_endpoint else self.client

    def _call(self, method: Callable[..., _Answer], key: str | None = None, **params: Any) -> _Answer:
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

    def put(
        self, key: str, source: Source, *, max_bytes: int | None = None, content_type: str | None = None
    ) -> StoredObject:
        check_key(key)
        reader = Metered(source, max_bytes)
        extra = {"ContentType": content_type} if content_type else {}
        first = reader.read_full(self.part_size)
        if len(first) < self.part_size:
            self._call(self.client.put_object, key, Body=first, **extra)
            return reader.stored(key)
        upload_id = self._call(self.client.create_multipart_upload, key, **extra)["UploadId"]
        try:
            parts: list[dict[str, str | int]] = []
            chunk, number = first, 1
            while chunk:
                answer = self._call(self.client.upload_part, key, UploadId=upload_id, PartNumber=number, Body=chunk)
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                chunk, number = b"", number + 1  # let the finished part go before reading the next
                chunk = reader.read_full(self.part_size)
            self._call(self.client.complete_multipart_upload, key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            # Should the abort fail too, the bucket's lifecycle rule for incomplete uploads cleans up.
            with contextlib.suppress(StorageError):
                self._call(self.client.abort_multipart_upload, key, UploadId=upload_id)
            raise
        return reader.stored(key)

    def open(self, key: str) -> StreamingBody:
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

    def list_objects(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """Every object's ``(key, size)`` under ``prefix``, in key order, a page (1,000 keys) at a time."""
        params: dict[str, Any] = {"Prefix": prefix} if prefix else {}
        while True:
            page = self._call(self.client.list_objects_v2, **params)
            for item in page.get("Contents", ()):
                yield item["Key"], int(item["Size"])
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def delete(self, key: str) -> bool:
        self._call(self.client.delete_object, check_key(key))
        return True

    def move(self, source: str, target: str) -> None:
        # Server-side copy: the bytes never pass through us. Copies above 5 GB need a
        # multipart copy, far above every upload cap.
        self._call(
            self.client.copy_object, check_key(target), CopySource={"Bucket": self.bucket, "Key": check_key(source)}
        )
        self.delete(source)

    def signed_url(
        self, key: str, ttl: int, *, filename: str | None = None, content_type: str | None = None, inline: bool = False
    ) -> tuple[str, datetime.datetime]:
        params: dict[str, str] = {"Bucket": self.bucket, "Key": signable(key)}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename, inline=inline)
        if content_type:
            params["ResponseContentType"] = content_type
        url = self.presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=int(ttl))
        return url, datetime.datetime.fromtimestamp(int(self.clock()) + int(ttl), datetime.UTC)

    def check(self, key: str, expires: int, sig: str) -> str:
        """Links to S3 objects are presigned by S3 itself; the API's download route serves none."""
        return "invalid"

    def upload_target(self, key: str, ttl: int, *, size: int, content_type: str, path: str) -> UploadTarget:
        """A presigned PUT with the length and type signed in: S3 refuses any other body."""
        url = self.presigner.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": check_key(key), "ContentLength": size, "ContentType": content_type},
            ExpiresIn=int(ttl),
        )
        return {
            "method": "PUT",
            "url": url,
            "headers": {"Content-Type": content_type},
            "expires_at": datetime.datetime.fromtimestamp(int(self.clock()) + int(ttl), datetime.UTC),
        }

    def check_upload(self, key: str, size: int, content_type: str, expires: int, sig: str) -> str:
        return "invalid"


_session_lock = threading.Lock()


@functools.cache
def _shared_session() -> boto3.session.Session:
    """The one session every client is made from: a session parses botocore's service models once."""
    import boto3

    return boto3.session.Session()


def _s3_client(**options: Any) -> S3Client:
    """An S3 client from the shared session."""
    with _session_lock:  # sessions are not thread-safe (made and used under the lock); the clients they make are
        return _shared_session().client("s3", **options)
