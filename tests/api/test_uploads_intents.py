"""Large uploads through an intent: a URL bound to size and type, then ``complete``; on local disk and S3."""

from __future__ import annotations

import datetime
import hashlib
import threading
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from models.base import utcnow
from models.uploads import Upload, incoming_key
from tasks.runtime import runtime as worker_runtime
from tasks.uploads import purge_expired_intents
from tests.api.conftest import assert_problem
from tests.services.backends import eicar, jpeg_with_gps, pdf, stored_keys
from tests.services.uploads_api import backend, download, keys_of, row, settings  # noqa: F401


def storage():
    """The storage of the worker side as it is now (the runtime's)."""
    return worker_runtime().storage


def _intent(
    client,
    headers,
    *,
    size: int,
    content_type: str = "image/jpeg",
    purpose: str = "listing_photo",
    filename: str = "garden.jpg",
) -> dict:
    resp = client.simulate_post(
        "/v1/uploads/intents",
        headers=headers,
        json={"purpose": purpose, "filename": filename, "content_type": content_type, "size": size},
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["Location"] == f"/v1/uploads/{resp.json['upload']['id']}"
    return resp.json


def _put(client, target: dict, data: bytes, content_type: str | None = None):
    """PUT to an upload target as a client would: this API's own route, or the S3 server."""
    headers = dict(target["headers"])
    if content_type:
        headers["Content-Type"] = content_type
    parts = urlsplit(target["url"])
    if parts.netloc == "hearth.test":
        resp = client.simulate_put(parts.path, query_string=parts.query, body=data, headers=headers)
        return resp.status_code
    return httpx.put(target["url"], content=data, headers=headers, timeout=10).status_code


def test_an_intent_upload_is_completed_scanned_and_served(client, jobs, user, auth_headers):
    headers = auth_headers(user)
    photo = jpeg_with_gps()
    intent = _intent(client, headers, size=len(photo))
    assert intent["upload"]["status"] == "awaiting_upload"
    assert intent["upload_target"]["method"] == "PUT"
    assert intent["upload_target"]["headers"] == {"Content-Type": "image/jpeg"}
    upload_id = intent["upload"]["id"]
    assert download(client, upload_id, headers)[0] == 404

    assert _put(client, intent["upload_target"], photo) in (200, 204)
    resp = client.simulate_post(intent["complete_url"], headers=headers)
    assert resp.status_code == 202, resp.text
    assert resp.json["status"] == "pending_scan" and resp.headers["Location"].startswith("/v1/jobs/")
    assert_problem(client.simulate_post(intent["complete_url"], headers=headers), 409)  # only once
    assert jobs.run_pending() == 1
    done = client.simulate_get(f"/v1/uploads/{upload_id}", headers=headers).json
    assert done["status"] == "clean" and done["sha256"] and done["size"] == len(photo)
    assert download(client, upload_id, headers) == (302, photo)


def test_a_presigned_upload_that_exceeds_its_declared_size_is_refused(client, jobs, user, auth_headers):
    headers = auth_headers(user)
    photo = jpeg_with_gps()
    intent = _intent(client, headers, size=len(photo) - 100)
    upload_id = intent["upload"]["id"]
    status = _put(client, intent["upload_target"], photo)
    if storage().name == "local":
        assert status == 413  # refused while reading, nothing kept
        assert keys_of(upload_id) == []
        assert_problem(client.simulate_post(intent["complete_url"], headers=headers), 409)
        assert row(upload_id).status == "awaiting_upload"
    else:
        # Real S3 refuses the PUT itself (the length is signed into the URL); a store that does not
        # check it (moto here) still never gets the file past ``complete``.
        body = assert_problem(client.simulate_post(intent["complete_url"], headers=headers), 413)
        assert str(len(photo)) in body["detail"]
        assert row(upload_id).status == "rejected"
        assert keys_of(upload_id) == []
    assert jobs.run_pending() == 0
    assert download(client, upload_id, headers)[0] == 404


def test_an_intent_whose_bytes_are_not_the_declared_type_is_refused(client, jobs, user, auth_headers):
    headers = auth_headers(user)
    document = pdf()
    intent = _intent(client, headers, size=len(document), content_type="image/png", filename="plan.png")
    assert _put(client, intent["upload_target"], document) in (200, 204)
    body = assert_problem(client.simulate_post(intent["complete_url"], headers=headers), 415)
    assert body["detail"].endswith("application/pdf.")
    assert row(intent["upload"]["id"]).status == "rejected" and keys_of(intent["upload"]["id"]) == []
    assert jobs.run_pending() == 0


def test_eicar_through_an_intent_ends_infected(client, jobs, user, auth_headers):
    headers = auth_headers(user)
    infected = pdf(eicar())
    intent = _intent(
        client, headers, size=len(infected), content_type="application/pdf", purpose="document", filename="offer.pdf"
    )
    assert _put(client, intent["upload_target"], infected) in (200, 204)
    assert client.simulate_post(intent["complete_url"], headers=headers).status_code == 202
    assert jobs.run_pending() == 1
    done = client.simulate_get(f"/v1/uploads/{intent['upload']['id']}", headers=headers).json
    assert done["status"] == "infected" and done["sha256"]
    assert download(client, done["id"], headers)[0] == 404 and keys_of(done["id"]) == []


def test_completing_before_uploading_or_someone_elses_intent(client, user, auth_headers, login):
    from tests.factories import make_user

    headers = auth_headers(user)
    intent = _intent(client, headers, size=1000)
    assert_problem(client.simulate_post(intent["complete_url"], headers=headers), 409)
    other = auth_headers(make_user())
    assert_problem(client.simulate_post(intent["complete_url"], headers=other), 404)


def test_the_local_upload_url_checks_signature_expiry_and_type(client, user, auth_headers, settings):
    if storage().name != "local":
        return  # S3 checks its own presigned URLs
    headers = auth_headers(user)
    photo = jpeg_with_gps()
    target = _intent(client, headers, size=len(photo))["upload_target"]
    parts = urlsplit(target["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}

    def put(q, content_type="image/jpeg", data=photo):
        return client.simulate_put(
            parts.path, query_string=urlencode(q), body=data, headers={"Content-Type": content_type}
        )

    assert_problem(put(dict(query, sig=query["sig"][:-2] + "xx")), 403)
    assert_problem(put(dict(query, expires=int(query["expires"]) + 60)), 403)  # extending breaks the signature
    assert_problem(put(query, content_type="application/pdf"), 415)
    other = _intent(client, headers, size=len(photo))["upload_target"]
    other_path = urlsplit(other["url"]).path
    assert_problem(
        client.simulate_put(
            other_path, query_string=urlencode(query), body=photo, headers={"Content-Type": "image/jpeg"}
        ),
        403,
    )  # another upload's URL
    assert stored_keys(storage()) == []
    assert put(query).status_code == 204


def _disguised_eicar(size: int) -> bytes:
    body = jpeg_with_gps(size=(64, 64))[:200] + eicar()
    return body + b"\0" * (size - len(body))


def test_bytes_sent_to_the_upload_url_after_complete_are_never_scanned_nor_served(client, jobs, user, auth_headers):
    # The upload URL stays valid after ``complete`` (an S3 presigned PUT until it expires). What the
    # scan reads and what is served must be the object frozen by ``complete``, whatever arrives later.
    headers = auth_headers(user)
    photo = jpeg_with_gps()
    intent = _intent(client, headers, size=len(photo))
    upload_id, target = intent["upload"]["id"], intent["upload_target"]
    assert _put(client, target, photo) in (200, 204)
    evil = _disguised_eicar(len(photo))
    answer, release, sent_most = {}, threading.Event(), threading.Event()
    sender = None
    if storage().name == "s3":

        def held_body():
            yield evil[:-1]
            sent_most.set()
            release.wait(20)
            yield evil[-1:]

        def held_put():  # held open across ``complete``, finished before the scan runs
            answer["status"] = httpx.put(
                target["url"],
                content=held_body(),
                timeout=30,
                headers={**target["headers"], "Content-Length": str(len(evil))},
            ).status_code

        sender = threading.Thread(target=held_put)
        sender.start()
        assert sent_most.wait(10)
    assert client.simulate_post(intent["complete_url"], headers=headers).status_code == 202
    if sender is not None:
        release.set()
        sender.join(30)
        assert answer["status"] == 200  # S3 takes it: it lands where nothing reads
        assert storage().get(incoming_key(upload_id)) == evil
    else:
        assert _put(client, target, evil) == 409  # local disk refuses it outright
        assert not storage().exists(incoming_key(upload_id))

    assert jobs.run_pending() == 1
    done = client.simulate_get(f"/v1/uploads/{upload_id}", headers=headers).json
    assert done["status"] == "clean" and done["sha256"] == hashlib.sha256(photo).hexdigest()
    assert download(client, upload_id, headers) == (302, photo)

    # Once the URL can no longer write, the upkeep removes whatever reached it late.
    Upload.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(Upload.id == upload_id).execute()
    assert purge_expired_intents()["late_uploads_swept"] == 1
    assert not storage().exists(incoming_key(upload_id))
    assert download(client, upload_id, headers) == (302, photo)
    assert row(upload_id).expires_at is None


def test_an_intent_body_replaced_before_complete_is_the_one_scanned(client, jobs, user, auth_headers):
    # Before ``complete`` the client may PUT again; the last whole body is what gets scanned.
    headers = auth_headers(user)
    photo = jpeg_with_gps()
    evil = _disguised_eicar(len(photo))
    intent = _intent(client, headers, size=len(photo))
    assert _put(client, intent["upload_target"], photo) in (200, 204)
    assert _put(client, intent["upload_target"], evil) in (200, 204)
    assert client.simulate_post(intent["complete_url"], headers=headers).status_code == 202
    assert jobs.run_pending() == 1
    done = row(intent["upload"]["id"])
    assert done.status == "infected" and done.sha256 == hashlib.sha256(evil).hexdigest()
    assert download(client, str(done.id), headers)[0] == 404
