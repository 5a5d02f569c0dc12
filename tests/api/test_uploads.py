"""Uploads through the API, on local disk and on S3: type, size, scan, previews, downloads."""

from __future__ import annotations

import io

from PIL import ExifTags, Image

from models.audit import AuditEntry
from models.jobs import Job
from models.uploads import Upload
from services.events import EventBus
from tasks.runtime import runtime as worker_runtime
from tests.api.conftest import assert_problem
from tests.services.backends import eicar, jpeg_with_gps, pdf, png, png_bomb, stored_keys
from tests.services.uploads_api import CAPS, backend, download, fetch, keys_of, row, settings, upload, uploaded  # noqa: F401


def storage():
    """The storage of the worker side as it is now (the runtime's)."""
    return worker_runtime().storage


def _counts() -> tuple[int, int]:
    return Upload.select().count(), Job.select().count()


def test_a_photo_is_scanned_clean_and_its_previews_carry_no_exif_or_gps(
    client, jobs, user, auth_headers, settings, redis
):
    headers = auth_headers(user)
    original = jpeg_with_gps()
    resp = upload(client, headers, original, filename="Kitchen.jpeg", content_type="text/plain")
    assert resp.status_code == 202, resp.text
    accepted = resp.json
    assert resp.headers["Location"] == f"/v1/jobs/{accepted['scan_job_id']}"
    assert (accepted["status"], accepted["content_type"], accepted["size"]) == (
        "pending_scan",
        "image/jpeg",
        len(original),
    )
    assert accepted["variants"] == []
    # Quarantined: stored, and not served.
    assert keys_of(accepted["id"]) == [f"quarantine/{accepted['id']}"]
    assert download(client, accepted["id"], headers)[0] == 404

    assert jobs.run_pending() == 1
    done = client.simulate_get(f"/v1/uploads/{accepted['id']}", headers=headers).json
    assert done["status"] == "clean" and done["scanned_at"]
    assert [v["name"] for v in done["variants"]] == ["original", "w320", "w1280"]
    assert {v["name"]: (v["width"], v["height"]) for v in done["variants"]} == {
        "original": (1200, 1600),
        "w320": (320, 427),
        "w1280": (1200, 1600),
    }  # EXIF orientation applied
    assert not any(key.startswith("quarantine/") for key in keys_of(accepted["id"]))

    assert download(client, accepted["id"], headers) == (302, original)
    for variant in ("w320", "w1280"):
        _status, data = download(client, accepted["id"], headers, variant=variant)
        image = Image.open(io.BytesIO(data))
        assert image.format == "WEBP"
        exif = image.getexif()
        assert len(exif) == 0 and not exif.get_ifd(ExifTags.IFD.GPSInfo)
        assert b"Exif" not in data and b"HearthCam" not in data and "exif" not in image.info
    # The original still has its GPS: it is for the owner only (see the visibility tests).
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    events = [e["type"] for e in EventBus(redis, settings.redis_prefix).history(f"user:{user.id}")]
    assert "upload.clean" in events


def test_an_eicar_upload_ends_infected_and_is_never_downloadable(client, jobs, user, auth_headers, settings, redis):
    headers = auth_headers(user)
    resp = upload(client, headers, pdf(eicar()), purpose="document", filename="contract.pdf")
    assert resp.status_code == 202, resp.text
    upload_id = resp.json["id"]
    assert download(client, upload_id, headers)[0] == 404  # not before the scan...
    assert jobs.run_pending() == 1

    done = client.simulate_get(f"/v1/uploads/{upload_id}", headers=headers).json
    assert (done["status"], done["signature"]) == ("infected", "Eicar-Test-Signature.UNOFFICIAL")
    assert done["variants"] == []
    assert download(client, upload_id, headers)[0] == 404  # ...nor after
    assert keys_of(upload_id) == []  # the object is gone
    assert row(upload_id).storage_key is None
    entry = AuditEntry.get((AuditEntry.action == "upload.infected") & (AuditEntry.target_id == upload_id))
    assert entry.target_type == "upload" and entry.after["signature"] == "Eicar-Test-Signature.UNOFFICIAL"
    assert entry.after["owner_id"] == str(user.id)
    events = EventBus(redis, settings.redis_prefix).history(f"user:{user.id}")
    infected = [e for e in events if e["type"] == "upload.infected"]
    assert len(infected) == 1 and infected[0]["data"]["id"] == upload_id
    # Job done, and a second run of the same job changes nothing.
    job = Job.get_by_id(done["scan_job_id"])
    assert job.status == "succeeded" and job.result["status"] == "infected"
    from tasks.uploads import scan_upload

    scan_upload(str(job.id))
    assert AuditEntry.select().where(AuditEntry.action == "upload.infected").count() == 1


def test_eicar_behind_a_valid_jpeg_header_is_caught(client, jobs, user, auth_headers):
    headers = auth_headers(user)
    disguised = jpeg_with_gps(size=(64, 64))[:200] + eicar() + b"\xff\xd9"
    done = uploaded(client, jobs, headers, disguised, filename="holiday.jpg")
    assert (done["content_type"], done["status"], done["signature"]) == (
        "image/jpeg",
        "infected",
        "Eicar-Test-Signature.UNOFFICIAL",
    )
    assert download(client, done["id"], headers)[0] == 404
    assert keys_of(done["id"]) == []


def test_an_oversized_upload_is_413_with_nothing_stored(client, user, auth_headers):
    headers = auth_headers(user)
    before, keys = _counts(), stored_keys(storage())
    too_big = b"\xff\xd8\xff\xe0" + b"\0" * CAPS["upload_photo_max_bytes"]
    body = assert_problem(upload(client, headers, too_big), 413)
    assert body["max_bytes"] == CAPS["upload_photo_max_bytes"]
    # Also over the cap of a smaller purpose, and through an intent.
    assert_problem(
        upload(client, headers, png((600, 600)) + b"\0" * CAPS["upload_avatar_max_bytes"], purpose="avatar"), 413
    )
    intent = client.simulate_post(
        "/v1/uploads/intents",
        headers=headers,
        json={
            "purpose": "document",
            "filename": "big.pdf",
            "content_type": "application/pdf",
            "size": CAPS["upload_document_max_bytes"] + 1,
        },
    )
    assert_problem(intent, 413)
    assert _counts() == before and stored_keys(storage()) == keys


def test_a_type_the_purpose_does_not_allow_is_415_whatever_the_name_or_content_type(client, user, auth_headers):
    headers = auth_headers(user)
    before, keys = _counts(), stored_keys(storage())
    cases = [
        (pdf(), "listing_photo", "photo.jpg", "image/jpeg"),  # a PDF named and typed as a photo
        (b"MZ\x90\x00 not really a program", "document", "report.pdf", "application/pdf"),
        (b"plain text, no magic", "document", "notes.txt", "text/plain"),
        (eicar(), "document", "eicar.pdf", "application/pdf"),  # bare EICAR has no type we take
        (pdf(), "avatar", "me.png", "image/png"),
    ]
    for data, purpose, name, declared in cases:
        body = assert_problem(upload(client, headers, data, purpose=purpose, filename=name, content_type=declared), 415)
        assert purpose in body["detail"]
    assert _counts() == before and stored_keys(storage()) == keys
    # The bytes decide: a PNG named .pdf is a PNG.
    resp = upload(client, headers, png(), purpose="document", filename="scan.pdf", content_type="application/pdf")
    assert resp.status_code == 202 and resp.json["content_type"] == "image/png"


def test_a_decompression_bomb_and_a_corrupt_image_are_rejected(client, jobs, user, auth_headers):
    headers = auth_headers(user)
    bomb = uploaded(client, jobs, headers, png_bomb(), filename="bomb.png")
    assert bomb["status"] == "rejected" and "pixels" in bomb["reject_reason"]
    corrupt = uploaded(client, jobs, headers, jpeg_with_gps()[:1500], filename="cut.jpg")
    assert corrupt["status"] == "rejected" and "corrupt" in corrupt["reject_reason"]
    for done in (bomb, corrupt):
        assert download(client, done["id"], headers)[0] == 404
        assert keys_of(done["id"]) == []


def test_path_traversal_and_unicode_file_names_are_harmless(client, jobs, user, auth_headers, settings):
    headers = auth_headers(user)
    names = {
        "../../../../etc/passwd": "passwd",
        "..\\..\\windows\\win.ini": "win.ini",
        "Küche 🏠 Ansicht.jpeg": "Küche 🏠 Ansicht.jpeg",
        "invoice\u202egpj.exe": "invoicegpj.exe",  # a right-to-left override would show "exe.jpg"
        "  ..  ": "upload",
        "/": "upload",
        "a\u0301\u200bb c": "áb c",  # combining accent composed, zero-width space dropped
    }
    for name, shown in names.items():
        done = uploaded(client, jobs, headers, png(), purpose="document", filename=name)
        assert done["status"] == "clean", done
        assert done["filename"] == shown
        key = row(done["id"]).storage_key
        assert key.startswith(f"files/{done['id']}/") and key.endswith(".png") and ".." not in key
        assert key.isascii() and "/" not in key[len(f"files/{done['id']}/") :]
        assert download(client, done["id"], headers) == (302, png())
        link = client.simulate_get(f"/v1/uploads/{done['id']}/download", headers=headers).headers["Location"]
        _, _, served = fetch(client, link)
        disposition = served["content-disposition"]
        assert disposition.isascii() and "\n" not in disposition and ".." not in disposition.split(";")[1]
    if storage().name == "local":
        everything = [p for p in settings.var_dir.rglob("*") if p.is_file()]
        assert all(storage().root in p.parents for p in everything if "storage" in p.parts)
        assert not (settings.var_dir / "etc").exists()


def test_no_body_is_411_an_empty_one_422_and_a_nul_in_the_name_422(client, user, auth_headers):
    headers = auth_headers(user)
    assert_problem(upload(client, headers, b""), 411)  # neither Content-Length nor chunked
    assert_problem(
        client.simulate_post(
            "/v1/uploads", params={"purpose": "document"}, body=b"", headers={**headers, "Content-Length": "0"}
        ),
        422,
        field="body",
    )
    assert_problem(upload(client, headers, png(), filename="a\x00b.png"), 422, field="query.filename")
    assert_problem(
        client.simulate_post("/v1/uploads", params={"purpose": "selfie"}, body=png(), headers=headers),
        422,
        field="query.purpose",
    )
