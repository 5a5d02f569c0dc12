"""Both storage backends behind one interface: streaming puts with a cap, moves, signed URLs."""

from __future__ import annotations

import io
import threading
import time

import httpx
import pytest

from services.storage import (
    InvalidKey,
    LocalDiskStorage,
    NotFound,
    S3Storage,
    StorageUnavailable,
    TooLarge,
    content_disposition,
    make_storage,
)
from settings import Settings
from tests.services.backends import S3_CREDENTIALS, new_bucket_url, stored_keys


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read and counts what was read."""

    def __init__(self, data: bytes, step: int = 64 * 1024):
        self.data, self.step, self.position = data, step, 0

    def readable(self):
        return True

    def read(self, size=-1):
        size = self.step if size is None or size < 0 else min(size, self.step)
        chunk = self.data[self.position : self.position + size]
        self.position += len(chunk)
        return chunk


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalDiskStorage(tmp_path / "objects", public_url="http://hearth.test", secret="s" * 40)
    settings = Settings.from_env({}, storage_url=new_bucket_url(), var_dir=tmp_path, **S3_CREDENTIALS)
    backend = make_storage(settings)
    backend.part_size = 5 * 1024 * 1024  # S3's smallest part: a 12 MiB object is three parts
    return backend


def test_put_streams_and_reports_size_and_digest(store):
    import hashlib

    data = bytes(range(256)) * (12 * 4096)  # 12 MiB
    stored = store.put("a/b.bin", Trickle(data), content_type="application/octet-stream")
    assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert store.size("a/b.bin") == len(data) and store.exists("a/b.bin")
    assert store.head_bytes("a/b.bin", 10) == data[:10]
    with store.open("a/b.bin") as stream:
        assert stream.read(5) == data[:5]
    assert store.get("a/b.bin") == data


def test_put_over_the_cap_stops_reading_and_keeps_nothing(store):
    source = Trickle(b"x" * (11 * 1024 * 1024))
    with pytest.raises(TooLarge):
        store.put("big/one", source, max_bytes=6 * 1024 * 1024)
    assert source.position <= 6 * 1024 * 1024 + 1024 * 1024  # stopped within one chunk of the cap
    assert stored_keys(store) == []
    if isinstance(store, S3Storage):  # no multipart upload left behind either
        assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_move_delete_and_missing_objects(store):
    store.put("quarantine/x", b"data")
    store.move("quarantine/x", "files/x/name.pdf")
    assert stored_keys(store) == ["files/x/name.pdf"]
    assert store.delete("files/x/name.pdf") and stored_keys(store) == []
    store.delete("files/x/name.pdf")  # idempotent
    with pytest.raises(NotFound):
        store.size("nothing/here")
    with pytest.raises(NotFound):
        store.move("nothing/here", "files/y")


def test_keys_are_checked_and_quarantined_objects_are_never_signed(store):
    for key in ("../etc/passwd", "/abs", "a//b", "a/../b", "", "ümlaut"):
        with pytest.raises(InvalidKey):
            store.put(key, b"x")
    store.put("quarantine/z", b"x")
    with pytest.raises(InvalidKey):
        store.signed_url("quarantine/z", 60)


def test_signed_urls_work_until_they_expire(store):
    store.put("files/u/report.pdf", b"%PDF-1.4")
    url, expires_at = store.signed_url(
        "files/u/report.pdf", 60, filename="Bericht über.pdf", content_type="application/pdf"
    )
    assert 55 <= expires_at.timestamp() - time.time() <= 61
    if isinstance(store, S3Storage):
        resp = httpx.get(url, timeout=10)
        assert resp.status_code == 200 and resp.content == b"%PDF-1.4"
        assert resp.headers["content-type"] == "application/pdf"
        assert "filename*=UTF-8''Bericht%20%C3%BCber.pdf" in resp.headers["content-disposition"]
    else:
        query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
        assert store.check("files/u/report.pdf", int(query["expires"]), query["sig"]) == "ok"
        assert store.check("files/u/other.pdf", int(query["expires"]), query["sig"]) == "invalid"
        assert store.check("files/u/report.pdf", int(query["expires"]) + 1, query["sig"]) == "invalid"


def test_an_unreachable_store_is_unavailable_not_a_bug(tmp_path):
    store = S3Storage("bucket", endpoint="http://127.0.0.1:9", access_key="a", secret_key="b")
    with pytest.raises(StorageUnavailable):
        store.put("k", b"x")


def test_content_disposition_is_ascii_with_the_name_in_utf8():
    value = content_disposition('Kü"che\r\n.jpg')
    assert value.isascii() and "\r" not in value and "\n" not in value
    assert value.startswith('attachment; filename="K__che__.jpg"')
    assert value.endswith("filename*=UTF-8''K%C3%BC%22che%0D%0A.jpg")


def test_storage_url_settings_are_validated():
    from settings import SettingsError

    for bad in (
        "ftp://x",
        "s3://",
        "s3://b/path",
        "s3://b?colour=red",
        "s3://b?endpoint=minio:9000",
        "s3://b?addressing=sideways",
    ):
        with pytest.raises(SettingsError) as info:
            Settings.from_env({"STORAGE_URL": bad})
        assert any("STORAGE_URL" in p for p in info.value.problems), bad
    settings = Settings.from_env({"STORAGE_URL": "s3://b?endpoint=http://minio:9000&region=eu-west-1"})
    store = make_storage(settings)
    assert isinstance(store, S3Storage) and store.bucket == "b"
    assert store.client.meta.endpoint_url == "http://minio:9000" and store.client.meta.region_name == "eu-west-1"


def test_writes_and_moves_survive_a_shared_directory_emptied_and_removed_meanwhile(tmp_path):
    # Every intent's upload lands in quarantine/incoming/, and a move that leaves it empty removes it:
    # a PUT between making that directory and opening its file must not fail for it.
    store = LocalDiskStorage(tmp_path, public_url="http://hearth.test", secret="s" * 32)
    errors: list[str] = []

    def uploads(prefix: str):
        for n in range(300):
            key = f"quarantine/incoming/{prefix}{n}"
            try:
                store.put(f"{key}.part", b"x" * 16)
                store.move(f"{key}.part", key)
                store.move(key, f"quarantine/{prefix}{n}")
            except Exception as exc:  # noqa: BLE001 - what the test is about
                errors.append(repr(exc))

    threads = [threading.Thread(target=uploads, args=(f"t{i}-",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len([key for key in stored_keys(store) if key.startswith("quarantine/t")]) == 1200
