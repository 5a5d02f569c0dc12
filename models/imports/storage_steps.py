"""The steps for Supabase Storage: ``storage.buckets`` (which purpose each bucket's files have) and
``storage.objects`` (each object's bytes become a Hearth upload that goes through the normal scan).

An object comes across as an upload owned by the user its ``owner_id`` (or the older ``owner``)
maps to, with the purpose the mapping file's ``[buckets]`` gives its bucket (``listing_photo``,
``avatar``, ``document``, ``attachment``) and the size and type rules of that purpose. Its bytes are
copied into ``quarantine/<upload id>`` (an id derived from the bucket, name and ETag, so a resumed run
writes the same key again: ``object_upload_id``) and a scan job is created with the upload: the file is served
only once the scan finds it clean. Reported instead: objects of buckets the mapping does not name
(``bucket-not-mapped``), folder placeholders, objects without an owner or whose owner did not come
across (``missing-reference``), bytes missing from the storage source (``missing-object``), files too
large or of a type the purpose refuses. A scan that later finds a file infected or refuses it adds a
report row to the run that imported it (``report_scan_verdict``).

The import map keys objects by bucket and name (``object_key``): that is how app columns refer to
them, so the mapping's ``storage_url`` transform finds the upload. The steps need the collaborators
``storage_source`` (``services.supabase_storage``), ``storage`` (Hearth's) and ``upload_rules``
(``models.file_rules.purpose_rules(settings)``) from the process's composition root.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from peewee import DatabaseError

from models.db import db
from models.file_rules import SNIFF_BYTES, detect_media_type, display_name, unsupported_reason
from models.imports.import_map import ImportMapEntry
from models.imports.mapping_rules import OBJECTS_TABLE, object_key
from models.imports.report import ImportReportRow
from models.imports.steps import SKIPPED, Outcome, Source, SourceRow, Step, StepContext, source_row
from models.uploads import PURPOSES, Upload, quarantine_key, stored_for_scan

log = logging.getLogger("hearth.imports")

BUCKETS_TABLE = "storage.buckets"
USERS_TABLE = "auth.users"
PLACEHOLDER = ".emptyFolderPlaceholder"  # what Supabase's dashboard writes to show an empty folder
SKIP_BUCKET = "skip"  # a bucket named with this purpose is deliberately not imported


class BucketsStep(Step):
    name = BUCKETS_TABLE
    target = "buckets"
    required = ("id", "name", "public", "file_size_limit", "allowed_mime_types")

    def __init__(self, purposes: dict[str, str]):
        self.purposes = purposes

    def rows(self, source: Source, since: datetime.datetime | None, after: Any = None) -> Iterator[SourceRow]:
        where, params = ("id > %s", [after]) if after is not None else ("", [])
        for data in source.stream(self.name, columns=self.required, where=where, params=params, order_by=["id"]):
            yield source_row(data["id"], data)

    def keys(self, source: Source) -> Iterator[str]:
        for data in source.stream(self.name, columns=["id"]):
            yield str(data["id"])

    def apply(self, row: SourceRow, ctx: StepContext) -> Outcome:
        bucket = row.key
        purpose = self.purposes.get(bucket)
        if purpose is None:
            return Outcome.skipped("bucket-not-mapped", f"bucket {bucket} is not named in the mapping's [buckets]")
        if purpose == SKIP_BUCKET:
            return Outcome.skipped("bucket-skipped", f"the mapping skips bucket {bucket}")
        return Outcome.inserted(bucket)


class ObjectsStep(Step):
    name = OBJECTS_TABLE
    target = "uploads"
    writes_outside_database = True  # each object's bytes are copied into Hearth's storage
    updated_column = "updated_at"
    required = ("id", "bucket_id", "name", "owner", "owner_id", "metadata", "created_at", "updated_at")

    def __init__(self, purposes: dict[str, str]):
        self.purposes = purposes

    def rows(self, source: Source, since: datetime.datetime | None, after: Any = None) -> Iterator[SourceRow]:
        where, params = [], []
        if since is not None:
            where.append("updated_at > %s")
            params.append(since)
        if after is not None:
            where.append("(bucket_id, name) > (%s, %s)")
            params.extend(after)
        for data in source.stream(
            self.name, columns=self.required, where=" AND ".join(where), params=params, order_by=["bucket_id", "name"]
        ):
            # The checksum reads what says the bytes changed, not when they were last read.
            yield source_row(object_key(data["bucket_id"], data["name"]), data, [data["bucket_id"], data["name"]])

    def keys(self, source: Source) -> Iterator[str]:
        for data in source.stream(self.name, columns=["bucket_id", "name"]):
            yield object_key(data["bucket_id"], data["name"])

    def apply(self, row: SourceRow, ctx: StepContext) -> Outcome:
        data = row.data
        bucket, name = str(data["bucket_id"]), str(data["name"])
        purpose = self.purposes.get(bucket)
        if purpose is None or purpose == SKIP_BUCKET:
            return Outcome.skipped("bucket-not-mapped", f"bucket {bucket} is not imported")
        if name.rsplit("/", 1)[-1] == PLACEHOLDER:
            return Outcome.skipped("folder-placeholder", "an empty folder's marker, not a file")
        owner_ref = data.get("owner_id") or data.get("owner")
        if not owner_ref:
            return Outcome.skipped("no-owner", "the object has no owner; Hearth keeps every file with its owner")
        owner = ctx.resolve(USERS_TABLE, str(owner_ref))
        if owner is None:
            return Outcome.skipped("missing-reference", f"column owner_id: auth.users {owner_ref} did not come across")
        source, storage = ctx.collaborators.get("storage_source"), ctx.collaborators["storage"]
        if source is None:
            return Outcome.skipped("no-storage-source", "the import was given no storage endpoint or directory")
        rule = ctx.collaborators["upload_rules"][purpose]
        upload_id = object_upload_id(bucket, name, data.get("metadata"), row.checksum)
        existing = Upload.get_or_none(Upload.id == upload_id)
        if existing is not None:
            # These very bytes came across before (the object's row changed, not its content): same upload.
            if existing.owner_id != uuid.UUID(owner):
                Upload.update(owner=owner).where(Upload.id == upload_id).execute()
            return Outcome.updated(upload_id)
        filename = display_name(name.rsplit("/", 1)[-1], fallback="file")
        if ctx.dry_run:
            # Nothing is copied; the row (rolled back with the dry run) lets the app tables' rows find the file.
            if not source.exists(bucket, name):
                return Outcome.skipped("missing-object", f"{bucket}/{name}: no bytes in the storage source")
            Upload.create(id=upload_id, owner=owner, purpose=purpose, status="pending_scan", filename=filename)
            return Outcome.inserted(upload_id)
        key = quarantine_key(upload_id)
        copied = source.copy_to(storage, bucket, name, key, max_bytes=rule.max_bytes)
        if copied.status == "missing":
            return Outcome.skipped("missing-object", f"{bucket}/{name}: no bytes in the storage source")
        if copied.status == "too-large":
            return Outcome.skipped("too-large", f"a {purpose} may be at most {rule.max_bytes} bytes")
        media_type = detect_media_type(storage.head_bytes(key, SNIFF_BYTES))
        if not rule.allows(media_type):
            storage.delete(key)
            return Outcome.skipped("unsupported-type", unsupported_reason(purpose, rule.types, media_type))
        upload, _ = stored_for_scan(
            upload_id, owner, purpose, filename, media_type, key=key, size=copied.size, sha256=copied.sha256
        )
        # A changed object is a new upload; the previous one stays with what refers to it until those rows change.
        return Outcome.updated(upload.id) if ctx.previous_id else Outcome.inserted(upload.id)


# Upload ids of imported objects are derived from what the object is, not drawn at random.
UPLOAD_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-4c35-9d0b-1f7e2a4c9b10")


def object_upload_id(bucket: str, name: str, metadata: Any, fallback: str) -> uuid.UUID:
    """The upload id (and so the ``quarantine/<id>`` key) of one version of an object: the same bucket, name
    and ETag give the same id. A run killed after copying bytes but before committing their upload leaves an
    object in Hearth's storage; the run that resumes copies the same version to the same key, over it, so no
    object is left without its upload. ``fallback`` (the row's checksum) stands in for a missing ETag."""
    etag = metadata.get("eTag") if isinstance(metadata, dict) else None
    identity = "\n".join((bucket, name, str(etag or fallback)))
    return uuid.uuid5(UPLOAD_NAMESPACE, identity)


def storage_steps(purposes: dict[str, str]) -> list[Step]:
    """The Storage steps, in order; they run after ``auth.users`` and before the app tables."""
    return [BucketsStep(purposes), ObjectsStep(purposes)]


def bucket_problems(purposes: object) -> list[tuple[str, str]]:
    """``[(path, message)]`` for a mapping's ``[buckets]`` table."""
    if not isinstance(purposes, dict):
        return [("buckets", 'a table of bucket = "purpose"')]
    allowed = (*PURPOSES, SKIP_BUCKET)
    return [
        (f"buckets.{bucket}", f"unknown purpose {purpose!r}; one of {', '.join(allowed)}")
        for bucket, purpose in purposes.items()
        if purpose not in allowed
    ]


def report_scan_verdict(upload: Upload, reason: str, detail: str) -> None:
    """In the scan's transaction: a file an import brought that the scan quarantined or refused is reported
    on the run that imported it (nothing for uploads that came through the API)."""
    entry = (
        ImportMapEntry.select(ImportMapEntry.source_key, ImportMapEntry.last_run_id)
        .where(
            (ImportMapEntry.target_table == ObjectsStep.target)
            & (ImportMapEntry.target_id == str(upload.id))
            & (ImportMapEntry.source_table == OBJECTS_TABLE)
        )
        .first()
    )
    if entry is None:
        return
    try:
        with db.atomic():
            ImportReportRow.add_many(entry.last_run_id, [(OBJECTS_TABLE, entry.source_key, SKIPPED, reason, detail)])
    except DatabaseError:
        # The verdict stands whatever happens to the report (its run may have been deleted meanwhile).
        log.warning("scan verdict not reported on its import", extra={"upload_id": str(upload.id)}, exc_info=True)


__all__ = [
    "BUCKETS_TABLE",
    "BucketsStep",
    "ObjectsStep",
    "bucket_problems",
    "object_upload_id",
    "report_scan_verdict",
    "storage_steps",
]
