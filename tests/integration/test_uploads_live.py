"""Uploads against real processes: gunicorn streaming bodies, a Celery worker on ``scans``, a clamd we stop."""

from __future__ import annotations

import hashlib
import pathlib
import threading
import time

import httpx
import pytest

from models.uploads import Upload, quarantine_key
from ops.clamd import ClamdServer, ensure_installed
from tests.factories import PASSWORD, make_user
from tests.integration.processes import start_gunicorn, start_worker, wait_for
from tests.services.backends import eicar, jpeg_with_gps, png
from tests.tasks.live import login

pytestmark = pytest.mark.integration
PHOTO_CAP = 1024 * 1024


@pytest.fixture
def clamd(tmp_path):
    server = ClamdServer(tmp_path / "clamd", ensure_installed())
    server.home.mkdir()
    yield server.start()
    server.stop()


@pytest.fixture
def env(live_env, clamd):
    return {**live_env, "CLAMD_URL": clamd.url, "UPLOAD_PHOTO_MAX_BYTES": str(PHOTO_CAP)}


def _chunks(data: bytes, size: int = 64 * 1024):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _stored(env) -> list[str]:
    root = pathlib.Path(env["HEARTH_VAR_DIR"]) / "storage"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _wait_upload(upload_id, predicate, procs, timeout=60.0, what="the upload"):
    try:
        return wait_for(
            lambda: (lambda u: u if predicate(u) else None)(Upload.get_by_id(upload_id)),
            timeout=timeout,
            interval=0.1,
            what=what,
        )
    except AssertionError as exc:
        logs = "\n".join(f"--- {p.name} ---\n{p.output()[-3000:]}" for p in procs)
        raise AssertionError(f"{exc}; upload is {Upload.get_by_id(upload_id).status}\n{logs}") from None


def test_a_chunked_upload_is_streamed_scanned_and_a_chunked_oversize_one_refused(env, live_db, logs, procs):
    user = make_user()
    web, base = start_gunicorn(env, logs)
    procs.append(web)
    procs.append(start_worker(env, logs, queues="scans"))
    headers = login(base, user.email, PASSWORD)
    photo = jpeg_with_gps()

    resp = httpx.post(
        f"{base}/v1/uploads",
        params={"purpose": "listing_photo", "filename": "porch.jpg"},
        headers=headers,
        content=_chunks(photo),
        timeout=10,
    )  # no Content-Length: chunked
    assert resp.status_code == 202, resp.text
    done = _wait_upload(resp.json()["id"], lambda u: u.status == "clean", procs, what="a clean scan")
    assert (done.size, sorted(done.previews)) == (len(photo), ["w1280", "w320"])

    before = _stored(env)
    big = png() + b"\0" * (2 * PHOTO_CAP)
    resp = httpx.post(
        f"{base}/v1/uploads", params={"purpose": "listing_photo"}, headers=headers, content=_chunks(big), timeout=10
    )
    assert resp.status_code == 413, resp.text
    assert _stored(env) == before and Upload.select().count() == 1


def test_clamd_stopped_during_a_scan_keeps_the_upload_quarantined_until_it_is_back(env, live_db, clamd, logs, procs):
    user = make_user()
    web, base = start_gunicorn(env, logs)
    procs.append(web)
    procs.append(start_worker(env, logs, queues="scans"))
    headers = login(base, user.email, PASSWORD)

    clamd.stop()
    resp = httpx.post(
        f"{base}/v1/uploads", params={"purpose": "listing_photo"}, headers=headers, content=png(), timeout=10
    )
    assert resp.status_code == 202, resp.text
    upload_id = resp.json()["id"]
    job_url = f"{base}{resp.headers['Location']}"
    # The scan ran, found no clamd, and is waiting to try again.
    wait_for(
        lambda: httpx.get(job_url, headers=headers, timeout=5).json()["last_error"] is not None,
        timeout=30,
        what="a failed scan attempt",
    )
    job = httpx.get(job_url, headers=headers, timeout=5).json()
    assert job["status"] in ("queued", "running") and job["attempts"] >= 1
    assert job["error"] is None  # not failed: waiting to try again
    assert Upload.get_by_id(upload_id).status in ("pending_scan", "scanning")
    assert quarantine_key(upload_id) in _stored(env)
    assert httpx.get(f"{base}/v1/uploads/{upload_id}/download", headers=headers, timeout=5).status_code == 404

    clamd.start()
    done = _wait_upload(upload_id, lambda u: u.status == "clean", procs, what="the scan after clamd came back")
    assert done.storage_key.startswith(f"files/{upload_id}/") and quarantine_key(upload_id) not in _stored(env)
    link = httpx.get(f"{base}/v1/uploads/{upload_id}/download", headers=headers, timeout=5)
    assert link.status_code == 302
    assert httpx.get(base + link.headers["Location"].removeprefix("http://hearth.test"), timeout=5).content == png()


def _disguised_eicar(size: int) -> bytes:
    """A JPEG header, then EICAR, padded to ``size`` bytes: what an attacker sends as the second body."""
    body = jpeg_with_gps(size=(64, 64))[:200] + eicar()
    return body + b"\0" * (size - len(body))


def test_a_put_held_open_across_complete_never_lands_and_the_scanned_bytes_are_served(env, live_db, logs, procs):
    # The attack: a second PUT to the signed upload URL is held open, the upload is completed, and
    # the second body's last byte is sent after the scan read the first one. It must not land.
    user = make_user()
    web, base = start_gunicorn(env, logs, workers=2)  # two sync workers: the held PUT blocks only one
    procs.append(web)
    headers = login(base, user.email, PASSWORD)
    photo = jpeg_with_gps()
    intent = httpx.post(
        f"{base}/v1/uploads/intents",
        headers=headers,
        timeout=10,
        json={"purpose": "listing_photo", "filename": "porch.jpg", "content_type": "image/jpeg", "size": len(photo)},
    )
    assert intent.status_code == 201, intent.text
    target = intent.json()["upload_target"]
    put_url = target["url"].replace("http://hearth.test", base)
    upload_id = intent.json()["upload"]["id"]
    assert httpx.put(put_url, content=photo, headers=target["headers"], timeout=10).status_code == 204

    evil = _disguised_eicar(len(photo))
    release, sent_most = threading.Event(), threading.Event()

    def held_body():
        yield evil[:-1]
        sent_most.set()
        release.wait(20)
        yield evil[-1:]

    answer = {}

    def held_put():
        answer["resp"] = httpx.put(
            put_url, content=held_body(), timeout=30, headers={**target["headers"], "Content-Length": str(len(evil))}
        )

    sender = threading.Thread(target=held_put)
    sender.start()
    assert sent_most.wait(10)
    time.sleep(0.3)  # let the server read what was sent
    done = httpx.post(f"{base}{intent.json()['complete_url']}", headers=headers, timeout=10)
    assert done.status_code == 202, done.text
    procs.append(start_worker(env, logs, queues="scans"))
    clean = _wait_upload(upload_id, lambda u: u.status == "clean", procs, what="the scan of the first body")
    release.set()
    sender.join(30)
    refused = answer["resp"]
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("upload-completed")

    assert clean.sha256 == hashlib.sha256(photo).hexdigest()
    link = httpx.get(f"{base}/v1/uploads/{upload_id}/download", headers=headers, timeout=5)
    assert link.status_code == 302
    served = httpx.get(base + link.headers["Location"].removeprefix("http://hearth.test"), timeout=5).content
    assert served == photo
    stored = _stored(env)
    assert [key for key in stored if upload_id in key and not key.startswith(("files/", "previews/"))] == []
    root = pathlib.Path(env["HEARTH_VAR_DIR"]) / "storage"
    assert all(eicar() not in (root / key).read_bytes() for key in stored)
    # And a PUT after the scan is refused at once, not only one held open across ``complete``.
    assert httpx.put(put_url, content=evil, headers=target["headers"], timeout=10).status_code == 409
