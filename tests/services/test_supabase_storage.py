"""Supabase's files, read from an export directory or through the S3 protocol (the local S3 server)."""

from __future__ import annotations

import uuid

import boto3
import pytest

from services.storage import LocalDiskStorage
from services.supabase_storage import (
    DirectoryStorageSource,
    ObjectMissing,
    S3StorageSource,
    StorageSourceError,
    make_storage_source,
)
from tests.services.backends import S3_CREDENTIALS, s3_endpoint

NAME = "u1/фото 2 🏡.png"
DATA = b"\x89PNG\r\n\x1a\n" + b"x" * 70_000


@pytest.fixture
def hearth_storage(tmp_path):
    return LocalDiskStorage(tmp_path / "hearth", public_url="http://hearth.test", secret="s" * 32)


@pytest.fixture
def directory(tmp_path):
    root = tmp_path / "export"
    (root / "avatars" / "u1").mkdir(parents=True)
    (root / "avatars" / NAME).write_bytes(DATA)
    (tmp_path / "outside.txt").write_bytes(b"secret")
    return DirectoryStorageSource(root)


@pytest.fixture
def s3():
    bucket = f"supabase-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint(), region_name="us-east-1", **S3_CREDENTIALS)
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=NAME, Body=DATA)
    source = make_storage_source(
        endpoint=s3_endpoint(),
        access_key=S3_CREDENTIALS["aws_access_key_id"],
        secret_key=S3_CREDENTIALS["aws_secret_access_key"],
    )
    assert isinstance(source, S3StorageSource)
    return bucket, source


def test_an_export_directory_streams_objects_and_says_which_are_missing(directory, hearth_storage):
    with directory.open("avatars", NAME) as stream:
        assert stream.read() == DATA
    assert directory.exists("avatars", NAME) and not directory.exists("avatars", "u1/none.png")
    with pytest.raises(ObjectMissing):
        directory.open("avatars", "u1/none.png")
    # An object's name is data from the source: it never reads outside its bucket.
    assert not directory.exists("avatars", "../../outside.txt")
    with pytest.raises(ObjectMissing):
        directory.open("..", "outside.txt")

    copied = directory.copy_to(hearth_storage, "avatars", NAME, "quarantine/a", max_bytes=len(DATA))
    assert (copied.status, copied.size) == ("copied", len(DATA)) and hearth_storage.get("quarantine/a") == DATA
    assert directory.copy_to(hearth_storage, "avatars", "nope", "quarantine/b", max_bytes=10).status == "missing"
    too_large = directory.copy_to(hearth_storage, "avatars", NAME, "quarantine/c", max_bytes=1000)
    assert too_large.status == "too-large" and not hearth_storage.exists("quarantine/c")


def test_the_s3_endpoint_streams_objects_path_style_and_says_which_are_missing(s3, hearth_storage):
    bucket, source = s3
    assert source.client.meta.config.s3["addressing_style"] == "path"
    body = source.open(bucket, NAME)
    try:
        assert body.read() == DATA
    finally:
        body.close()
    assert source.exists(bucket, NAME) and not source.exists(bucket, "u1/gone.png")
    assert not source.exists("no-such-bucket-" + uuid.uuid4().hex[:8], NAME)
    copied = source.copy_to(hearth_storage, bucket, NAME, "quarantine/s3", max_bytes=10**6)
    assert copied.status == "copied" and hearth_storage.get("quarantine/s3") == DATA
    assert source.copy_to(hearth_storage, bucket, "u1/gone.png", "quarantine/x", max_bytes=10).status == "missing"


def test_an_unreachable_endpoint_is_an_error_that_names_no_secret(s3):
    bucket, _ = s3
    source = S3StorageSource("http://127.0.0.1:9", region="us-east-1", access_key="AKIAEXAMPLE", secret_key="hunter2")
    with pytest.raises(StorageSourceError) as caught:
        source.open(bucket, NAME)
    assert "hunter2" not in str(caught.value) and "AKIAEXAMPLE" not in str(caught.value)


def test_the_options_name_exactly_one_source(tmp_path):
    assert make_storage_source() is None
    assert isinstance(make_storage_source(directory=str(tmp_path)), DirectoryStorageSource)
    with pytest.raises(StorageSourceError):
        make_storage_source(directory=str(tmp_path), endpoint="http://127.0.0.1:9")
    with pytest.raises(StorageSourceError):
        make_storage_source(directory=str(tmp_path / "absent"))
