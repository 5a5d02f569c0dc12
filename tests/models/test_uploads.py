"""The upload's state rules in the model: completing an intent, refusing what was not declared, rescans."""

from __future__ import annotations

import datetime
import uuid

import pytest

from models.base import utcnow
from models.db import db
from models.file_rules import PurposeRule
from models.jobs import Job
from models.uploads import (
    SCAN_KIND,
    IntentExpired,
    Upload,
    UploadStateError,
    incoming_key,
    intent_mismatch,
    lock_awaiting_intent,
    lock_intent,
    quarantine_key,
    queue_intent_scan,
    restart_scan,
)
from tests.factories import make_user

PHOTO = PurposeRule("listing_photo", ("image/jpeg", "image/png"), 1_000)


def _upload(owner, **fields) -> Upload:
    upload_id = uuid.uuid4()
    values = {
        "id": upload_id,
        "owner": owner.id,
        "purpose": "listing_photo",
        "status": "awaiting_upload",
        "filename": "garden.jpg",
        "declared_type": "image/jpeg",
        "declared_size": 100,
        "storage_key": quarantine_key(upload_id),
    }
    values.update(fields)
    return Upload.create(**values)


@pytest.fixture
def owner(database):
    return make_user(role="seller")


def test_an_intent_must_hold_exactly_what_was_declared(owner):
    intent = _upload(owner)
    assert intent_mismatch(intent, 100, "image/jpeg", PHOTO) is None
    larger = intent_mismatch(intent, 101, "image/jpeg", PHOTO)
    assert (larger.kind, larger.reason) == ("too_large", "The upload has 101 bytes; 100 were declared.")
    assert intent_mismatch(intent, 99, "image/jpeg", PHOTO).kind == "incomplete"
    other_type = intent_mismatch(intent, 100, "image/png", PHOTO)
    assert other_type.kind == "type"
    assert other_type.reason == "A listing_photo must be one of image/jpeg; this file's bytes are image/png."
    assert intent_mismatch(intent, 100, None, PHOTO).reason.endswith("this file's bytes are none of those.")


def test_only_the_owner_completes_an_intent_and_only_once(owner):
    intent = _upload(owner)
    with db.atomic():
        assert lock_intent(intent.id, str(make_user().id)) is None
        assert lock_intent(uuid.uuid4(), str(owner.id)) is None
        assert lock_intent(intent.id, str(owner.id)).id == intent.id
        moved, job = queue_intent_scan(intent, 100, "image/jpeg")
    assert (moved.status, moved.content_type, moved.size) == ("pending_scan", "image/jpeg", 100)
    assert (job.kind, job.input) == (SCAN_KIND, {"upload_id": str(intent.id)})
    with pytest.raises(UploadStateError) as refused:
        lock_intent(intent.id, str(owner.id))
    assert (str(refused.value), refused.value.slug) == ("The upload is already pending_scan.", "upload-completed")
    assert lock_awaiting_intent(intent.id) is None  # a PUT landing now is not kept


def test_an_expired_intent_is_not_completed(owner):
    intent = _upload(owner, expires_at=utcnow() - datetime.timedelta(seconds=1))
    with pytest.raises(IntentExpired):
        lock_intent(intent.id, str(owner.id))
    assert lock_awaiting_intent(intent.id).id == intent.id  # still awaiting: the purge removes it


def _clean(owner, **fields) -> Upload:
    upload_id = uuid.uuid4()
    return _upload(
        owner,
        id=upload_id,
        status="clean",
        content_type="image/jpeg",
        size=100,
        storage_key=f"files/{upload_id}/garden.jpg",
        **fields,
    )


def test_a_rescan_needs_a_file_and_no_scan_under_way(owner):
    infected = _upload(owner, status="infected", signature="Eicar-Signature", storage_key=None)
    with pytest.raises(UploadStateError) as refused:
        restart_scan(infected)
    assert refused.value.slug == "nothing-to-scan"

    clean = _clean(owner)
    moved, job = restart_scan(clean)
    assert moved.status == "pending_scan" and moved.scan_job == job.id
    with pytest.raises(UploadStateError) as refused:
        restart_scan(moved)  # its new scan job is queued
    assert refused.value.slug == "scan-under-way"


def test_a_rescan_of_an_upload_that_changed_since_it_was_read_is_refused(owner):
    read = _clean(owner)
    Upload.update(status="infected", signature="Eicar-Signature", storage_key=None).where(
        Upload.id == read.id
    ).execute()  # a scan finished meanwhile
    with pytest.raises(UploadStateError) as refused:
        restart_scan(read)
    assert refused.value.slug == "upload-changed"
    assert not Job.select().where(Job.owner == owner.id).exists()  # no scan job was started


def test_deleting_an_upload_reaches_every_key_it_may_occupy(owner):
    photo = _clean(owner, previews={"w320": {"key": "previews/x/w320.webp"}})
    assert photo.stored_keys() == {
        quarantine_key(photo.id),
        incoming_key(photo.id),
        photo.clean_key(),
        "previews/x/w320.webp",
    }
    intent = _upload(owner, storage_key=None)
    assert intent.stored_keys() == {quarantine_key(intent.id), incoming_key(intent.id)}
