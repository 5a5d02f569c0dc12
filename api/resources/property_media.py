"""``/v1/properties/{id}/photos`` and ``/documents``: clean uploads attached to a listing.

Photos: the listing's owner, agent or an admin sets the whole ordered list at
once (``PUT``), naming the cover (default: the first). Photos anyone may see
the listing's, and a public listing's photos are public (previews only).
New photos must be clean ``listing_photo`` uploads of the caller (an admin may
attach anyone's); photos already on this listing may stay whoever sent them.

Documents: a listing's people attach their own clean ``document`` uploads;
each document is seen only by its uploader, admins and the participants of a
conversation it was sent in.

Who may not see the listing gets 404; who sees it but may not change it, 403.
"""

from __future__ import annotations

import uuid

import falcon
from peewee import IntegrityError

from api.audit import audit
from api.errors import conflict, forbidden, not_found, validation_error
from api.operation import operation
from api.schemas.uploads import DocumentAttachRequest, ListingDocuments, ListingPhotos, PhotosRequest
from models.db import db
from models.properties import Property
from models.upload_access import FULL, PUBLIC, upload_view
from models.uploads import PropertyMedia, Upload

TAGS = ("listings",)


def _listing(principal, property_id, *, manage: bool) -> Property:
    listing = Property.get_or_none(Property.id == property_id)
    if listing is None or not (listing.is_public or listing.is_managed_by(principal)):
        raise not_found("listing")
    if manage and not listing.is_managed_by(principal):
        raise forbidden("Only the listing's owner, its agent or an admin may change its media.")
    return listing


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def photos_view(listing: Property, principal) -> dict:
    level = FULL if listing.is_managed_by(principal) else PUBLIC
    rows = (
        PropertyMedia.select(PropertyMedia, Upload)
        .join(Upload)
        .where((PropertyMedia.property == listing.id) & (PropertyMedia.kind == "photo") & (Upload.status == "clean"))
        .order_by(PropertyMedia.position)
    )
    items = []
    for media in rows:
        view = upload_view(media.upload, level)
        items.append(
            {
                "upload_id": view["id"],
                "position": media.position,
                "is_cover": media.is_cover,
                "width": media.upload.width,
                "height": media.upload.height,
                "variants": view["variants"],
            }
        )
    return {"property_id": str(listing.id), "items": items}


def _audit(req, action: str, listing: Property, before, after) -> None:
    audit(req, action, listing.id, target_type="property", before=before, after=after)


class ListingPhotosResource:
    @operation(
        "A listing's photos, in order",
        response=ListingPhotos,
        auth="optional",
        errors=(404,),
        tags=TAGS,
        description="Public for a public listing (previews only); its owner, agent and admins also see "
        "the originals and drafts' photos.",
    )
    def on_get(self, req, resp, property_id):
        listing = _listing(req.context.principal, property_id, manage=False)
        resp.media = photos_view(listing, req.context.principal)

    @operation(
        "Set a listing's photos: order and cover",
        body=PhotosRequest,
        response=ListingPhotos,
        errors=(403, 404, 409, 422),
        tags=TAGS,
        description="`upload_ids` is the complete list, in order: photos left out are detached (the "
        "uploads remain). Each must be a clean `listing_photo` upload of yours or already on "
        "this listing, and on no other listing. `cover` defaults to the first.",
    )
    def on_put(self, req, resp, property_id):
        principal = req.context.principal
        body: PhotosRequest = req.context.body
        listing = _listing(principal, property_id, manage=True)
        ids = [_uuid_or_none(value) for value in body.upload_ids]
        problems = [
            {"field": f"body.upload_ids[{i}]", "message": "listed twice"}
            for i, value in enumerate(ids)
            if value in ids[:i]
        ]
        cover = _uuid_or_none(body.cover) if body.cover else (ids[0] if ids else None)
        if body.cover and cover not in ids:
            problems.append({"field": "body.cover", "message": "must be one of upload_ids"})
        if problems:
            raise validation_error(problems)
        with db.atomic():
            uploads = {u.id: u for u in Upload.select().where(Upload.id.in_(ids or [None])).for_update()}
            attached = {m.upload_id: m for m in PropertyMedia.select().where(PropertyMedia.upload.in_(ids or [None]))}
            current = list(
                PropertyMedia.select()
                .where((PropertyMedia.property == listing.id) & (PropertyMedia.kind == "photo"))
                .order_by(PropertyMedia.position)
            )
            problems, not_clean = [], []
            for i, upload_id in enumerate(ids):
                if upload_id is not None:
                    upload, media = uploads.get(upload_id), attached.get(upload_id)
                else:  # not a UUID, so the id of no upload
                    upload, media = None, None
                ours = media is not None and media.property_id == listing.id
                field = f"body.upload_ids[{i}]"
                if upload is None or not (ours or principal.is_admin or str(upload.owner_id) == principal.user_id):
                    problems.append({"field": field, "message": "no such upload of yours"})
                elif upload.purpose != "listing_photo":
                    problems.append({"field": field, "message": "not a listing_photo upload"})
                elif media is not None and not ours:
                    raise conflict(f"Upload {upload_id} is a photo of another listing.", slug="photo-elsewhere")
                elif upload.status != "clean":
                    not_clean.append(str(upload_id))
            if problems:
                raise validation_error(problems)
            if not_clean:
                raise conflict(f"Not scanned clean (yet): {', '.join(not_clean)}.", slug="upload-not-clean")
            by_upload = {m.upload_id: m for m in current}
            PropertyMedia.delete().where(
                (PropertyMedia.property == listing.id) & (PropertyMedia.kind == "photo")
            ).execute()
            rows = [
                {
                    "property": listing.id,
                    "upload": upload_id,
                    "kind": "photo",
                    "position": position,
                    "is_cover": upload_id == cover,
                    "attached_by": (
                        by_upload[upload_id].attached_by_id if upload_id in by_upload else principal.user_id
                    ),
                }
                for position, upload_id in enumerate(ids)
            ]
            try:
                with db.atomic():
                    if rows:
                        PropertyMedia.insert_many(rows).execute()
            except IntegrityError:  # attached elsewhere meanwhile
                raise conflict("A photo was attached to another listing meanwhile.", slug="photo-elsewhere") from None
            _audit(
                req,
                "property.photos_set",
                listing,
                before=[str(m.upload_id) for m in current],
                after={"upload_ids": [str(i) for i in ids], "cover": str(cover) if cover else None},
            )
        resp.media = photos_view(listing, principal)


class ListingDocumentsResource:
    @staticmethod
    def _view(listing: Property, principal) -> dict:
        query = (
            PropertyMedia.select(PropertyMedia, Upload)
            .join(Upload)
            .where((PropertyMedia.property == listing.id) & (PropertyMedia.kind == "document"))
        )
        if not principal.is_admin:
            query = query.where(Upload.owner == principal.user_id)
        items = [
            {
                "upload_id": str(m.upload.id),
                "filename": m.upload.filename,
                "content_type": m.upload.content_type,
                "size": m.upload.size,
                "url": f"/v1/uploads/{m.upload.id}/download",
                "attached_at": m.created_at.isoformat(),
            }
            for m in query.order_by(PropertyMedia.created_at, PropertyMedia.id)
        ]
        return {"property_id": str(listing.id), "items": items}

    @operation(
        "A listing's documents that I may see",
        response=ListingDocuments,
        errors=(404,),
        tags=TAGS,
        description="Each document is visible only to whoever uploaded it, and to admins.",
    )
    def on_get(self, req, resp, property_id):
        listing = _listing(req.context.principal, property_id, manage=False)
        resp.media = self._view(listing, req.context.principal)

    @operation(
        "Attach a document to a listing",
        body=DocumentAttachRequest,
        response=ListingDocuments,
        status=201,
        errors=(403, 404, 409, 422),
        tags=TAGS,
        description="A clean `document` upload of yours (admins: anyone's), on no other listing.",
    )
    def on_post(self, req, resp, property_id):
        principal = req.context.principal
        listing = _listing(principal, property_id, manage=True)
        upload_id = _uuid_or_none(req.context.body.upload_id)
        upload = Upload.get_or_none(Upload.id == upload_id)
        field = [{"field": "body.upload_id", "message": "no such document upload of yours"}]
        if (
            upload is None
            or upload.purpose != "document"
            or not (principal.is_admin or str(upload.owner_id) == principal.user_id)
        ):
            raise validation_error(field)
        if upload.status != "clean":
            raise conflict("The document is not scanned clean (yet).", slug="upload-not-clean")
        try:
            with db.atomic():
                PropertyMedia.create(
                    property=listing.id, upload=upload.id, kind="document", attached_by=principal.user_id
                )
                _audit(req, "property.document_attached", listing, None, {"upload_id": str(upload.id)})
        except IntegrityError:
            raise conflict("The document is attached to a listing already.", slug="document-attached") from None
        resp.status = falcon.HTTP_201
        resp.media = self._view(listing, principal)

    @operation(
        "Detach a document from a listing",
        status=204,
        errors=(404,),
        tags=TAGS,
        description="Its uploader or an admin; the upload itself remains.",
    )
    def on_delete_item(self, req, resp, property_id, upload_id):
        principal = req.context.principal
        listing = _listing(principal, property_id, manage=False)
        media = (
            PropertyMedia.select(PropertyMedia, Upload)
            .join(Upload)
            .where(
                (PropertyMedia.property == listing.id)
                & (PropertyMedia.kind == "document")
                & (PropertyMedia.upload == upload_id)
            )
            .first()
        )
        if media is None or not (principal.is_admin or str(media.upload.owner_id) == principal.user_id):
            raise not_found("document")
        with db.atomic():
            media.delete_instance()
            _audit(req, "property.document_detached", listing, {"upload_id": str(upload_id)}, None)
        resp.status = falcon.HTTP_204
