"""The personal data export on S3 storage: the archive goes to the bucket, the link is a presigned GET."""

from __future__ import annotations

import io
import zipfile
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import make_settings
from tests.factories import make_user
from tests.services.backends import backend_overrides, s3_endpoint


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(database, tmp_path, redis_prefix=redis_prefix, **backend_overrides("s3"))


def test_the_export_archive_is_stored_on_s3_and_downloaded_from_it(client, jobs, auth_headers):
    me = make_user(full_name="Ada on S3")
    headers = auth_headers(me)
    job = client.simulate_post("/v1/me/export", headers=headers).json
    assert jobs.run_pending() == 1
    done = client.simulate_get(f"/v1/jobs/{job['id']}", headers=headers).json
    assert done["status"] == "succeeded", done
    url = done["result"]["download_url"]
    assert url.startswith(s3_endpoint()) and "X-Amz-Signature=" in urlsplit(url).query
    resp = httpx.get(url, timeout=10)
    assert resp.status_code == 200
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        assert b"Ada on S3" in archive.read("profile.json")
    # The API's own download route serves no S3 object, whatever the path.
    key = done["result"]["file"]["key"]
    assert client.simulate_get(f"/v1/downloads/{key}", params={"expires": 9999999999, "sig": "x"}).status_code == 403
