"""The real outside services the upload tests need: clamd with the test signatures, an S3 server.

``make test`` starts both once (ops/testrun.py) and names them in
``TEST_CLAMD_URL`` / ``TEST_S3_ENDPOINT``. A bare ``pytest`` run starts them on
first use, once per process, and stops them at exit.
"""

from __future__ import annotations

import atexit
import io
import os
import pathlib
import struct
import tempfile
import uuid
import zlib

S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_started: dict = {}


def _home(name: str) -> pathlib.Path:
    return pathlib.Path(tempfile.mkdtemp(prefix=f"hearth-test-{name}-"))


def clamd_url() -> str:
    if os.environ.get("TEST_CLAMD_URL"):
        return os.environ["TEST_CLAMD_URL"]
    if "clamd" not in _started:
        from ops.clamd import start_clamd

        server = start_clamd(_home("clamd"))
        atexit.register(server.stop)
        _started["clamd"] = server
    return _started["clamd"].url


def s3_endpoint() -> str:
    if os.environ.get("TEST_S3_ENDPOINT"):
        return os.environ["TEST_S3_ENDPOINT"]
    if "s3" not in _started:
        from ops.s3server import start_s3_server

        server = start_s3_server()
        atexit.register(server.stop)
        _started["s3"] = server
    return _started["s3"].endpoint


def new_bucket_url() -> str:
    """A fresh, empty bucket on the test S3 server, as a STORAGE_URL."""
    from services.storage import S3Storage

    endpoint = s3_endpoint()
    bucket = f"hearth-test-{uuid.uuid4().hex[:16]}"
    S3Storage(bucket, endpoint=endpoint, access_key="testing", secret_key="testing").create_bucket()
    return f"s3://{bucket}?endpoint={endpoint}&region=us-east-1"


def backend_overrides(backend: str) -> dict:
    """Settings overrides for ``backend`` ("local" or "s3") and the test clamd."""
    overrides = {"clamd_url": clamd_url()}
    if backend == "s3":
        overrides.update(storage_url=new_bucket_url(), **S3_CREDENTIALS)
    return overrides


def stored_keys(storage) -> list[str]:
    """Every key in a backend (tests only: lists the whole bucket or directory)."""
    if storage.name == "s3":
        pages = storage.client.get_paginator("list_objects_v2").paginate(Bucket=storage.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))
    root = storage.root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- files -----------------------------------------------------------------------------------


def eicar() -> bytes:
    from ops.clamd import eicar_bytes

    return eicar_bytes()


def jpeg_with_gps(size=(1600, 1200)) -> bytes:
    """A JPEG whose EXIF names a camera and a place (GPS), rotated by its Orientation tag."""
    from PIL import ExifTags, Image

    image = Image.new("RGB", size, (200, 120, 40))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "HearthCam"
    exif[ExifTags.Base.Orientation] = 6
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (37.0, 46.0, 29.7)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (122.0, 25.0, 9.9)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=85)
    return out.getvalue()


def png(size=(64, 48)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", size, (10, 200, 30, 128)).save(out, "PNG")
    return out.getvalue()


def pdf(body: bytes = b"") -> bytes:
    """A minimal PDF; ``body`` lands inside it (a virus hides in a document like this)."""
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n%" + body + b"\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG of a few hundred bytes whose header announces ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )
