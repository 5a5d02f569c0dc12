"""What the upload API tests share: settings per storage backend, uploading, following download links."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from models.uploads import Upload
from tasks.runtime import runtime as worker_runtime
from tests.conftest import make_settings
from tests.services.backends import backend_overrides

# Small caps keep the oversize tests fast; the rules are the same at any size.
CAPS = {
    "upload_photo_max_bytes": 2 * 1024 * 1024,
    "upload_document_max_bytes": 3 * 1024 * 1024,
    "upload_avatar_max_bytes": 1024 * 1024,
    "upload_direct_max_bytes": 2 * 1024 * 1024,
}


@pytest.fixture(params=["local", "s3"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(database, tmp_path, redis_prefix, backend):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, **CAPS, **backend_overrides(backend))


def upload(
    client,
    headers,
    data: bytes,
    purpose: str = "listing_photo",
    filename: str | None = "photo.jpg",
    content_type: str = "application/octet-stream",
):
    params = {"purpose": purpose}
    if filename is not None:
        params["filename"] = filename
    return client.simulate_post(
        "/v1/uploads", params=params, body=data, headers={**headers, "Content-Type": content_type}
    )


def uploaded(client, jobs, headers, data: bytes, **options) -> dict:
    """Upload, run the scan, and return the upload as its owner reads it afterwards."""
    resp = upload(client, headers, data, **options)
    assert resp.status_code == 202, resp.text
    assert jobs.run_pending() == 1
    after = client.simulate_get(f"/v1/uploads/{resp.json['id']}", headers=headers)
    assert after.status_code == 200, after.text
    return after.json


def fetch(client, url: str):
    """GET a signed URL: this API's own download route, or the S3 server. Returns (status, bytes, headers)."""
    parts = urlsplit(url)
    if parts.netloc == "hearth.test":  # PUBLIC_URL of the test settings
        resp = client.simulate_get(parts.path, query_string=parts.query)
        return resp.status_code, resp.content, resp.headers
    resp = httpx.get(url, timeout=10)
    return resp.status_code, resp.content, resp.headers


def download(client, upload_id: str, headers=None, variant: str | None = None):
    """Follow ``/download`` (302) to the file; returns (status of the API's answer, file bytes or None)."""
    params = {"variant": variant} if variant else None
    resp = client.simulate_get(f"/v1/uploads/{upload_id}/download", headers=headers or {}, params=params)
    if resp.status_code != 302:
        return resp.status_code, None
    assert resp.headers["Location"] == resp.json["url"]
    status, content, _ = fetch(client, resp.headers["Location"])
    assert status == 200, content[:300]
    return 302, content


def keys_of(upload_id) -> list[str]:
    """Stored keys that belong to ``upload_id`` (original, quarantine, previews)."""
    from tests.services.backends import stored_keys

    return [key for key in stored_keys(worker_runtime().storage) if str(upload_id) in key]


def row(upload_id) -> Upload:
    return Upload.get_by_id(upload_id)
