"""Who may see an upload, how much of it, and which of its files may be handed out.

* the uploader and admins: the upload in every state, and every variant once clean;
* anyone allowed to see a listing (everyone while it is public, its owner/agent
  otherwise): the clean photos attached to it, previews only (the original keeps
  the camera's EXIF, GPS included);
* documents and attachments: the uploader, admins, the participants of a conversation
  they were sent in and the parties of an offer they came with; avatars: only the uploader and admins.

``principal`` is whoever asks (``user_id``, ``is_admin``), or None for a visitor.
Whoever may not see an upload is told nothing about it: callers answer as if it did
not exist, so upload ids stay private.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.messages import ATTACHABLE_PURPOSES, attachment_shared_with
from models.offers import document_shared_with
from models.properties import Property
from models.uploads import PropertyMedia, Upload

# Everything about the upload, originals included.
FULL = "full"
# What a visitor of a public listing sees of its photos: previews, not the original.
PUBLIC = "public"


def may_manage(principal, upload: Upload) -> bool:
    """The uploader or an admin: who may delete the upload."""
    return principal is not None and (principal.is_admin or str(upload.owner_id) == principal.user_id)


def access_level(principal, upload: Upload) -> str | None:
    """``FULL`` (uploader, admin, the listing's people, the participants of a conversation it was sent in,
    the parties of an offer it came with),
    ``PUBLIC`` (a public listing's photo) or None (nothing at all)."""
    if may_manage(principal, upload):
        return FULL
    if (
        principal is not None
        and upload.purpose in ATTACHABLE_PURPOSES
        and (attachment_shared_with(upload.id, principal.user_id) or document_shared_with(upload.id, principal.user_id))
    ):
        return FULL
    if upload.purpose != "listing_photo" or upload.status != "clean":
        return None
    listing = (
        Property.select()
        .join(PropertyMedia, on=(PropertyMedia.property == Property.id))
        .where(PropertyMedia.upload == upload.id)
        .first()
    )
    if listing is None:
        return None
    if listing.is_managed_by(principal):
        return FULL
    return PUBLIC if listing.is_public else None


def visible_upload(principal, upload_id) -> tuple[Upload, str] | None:
    """The upload and the caller's access level; None when there is no such upload or they may not see it."""
    upload = Upload.get_or_none(Upload.id == upload_id)
    level = access_level(principal, upload) if upload is not None else None
    if level is None:
        return None
    return upload, level


def upload_view(upload: Upload, level: str = FULL) -> dict:
    """The upload as someone with ``level`` access sees it."""
    view = upload.view()
    if level == PUBLIC:
        # What a visitor of a listing sees: previews, not the original nor who named it what.
        view.update(
            filename="photo",
            sha256=None,
            scan_job_id=None,
            size=None,
            variants=[v for v in view["variants"] if v["name"] != "original"],
        )
    return view


@dataclass(frozen=True)
class ServedFile:
    """An object of a clean upload that may be handed out as a signed URL, and how it is served."""

    key: str
    filename: str
    content_type: str
    inline: bool


def served_file(upload: Upload, level: str, variant: str) -> ServedFile | None:
    """The object behind ``variant`` ("original" or a preview width) for someone with ``level`` access.

    None when nothing may be served: the upload is not clean (an unscanned, infected or rejected
    file is never served), the original was asked for without ``FULL`` access, or no such preview exists.
    """
    if upload.status != "clean" or not upload.storage_key:
        return None
    if variant == "original":
        if level != FULL:
            return None
        return ServedFile(upload.storage_key, upload.served_name(), upload.content_type, inline=False)
    preview = (upload.previews or {}).get(variant)
    if preview is None:
        return None
    return ServedFile(preview["key"], f"{variant}.webp", "image/webp", inline=True)


__all__ = ["FULL", "PUBLIC", "ServedFile", "access_level", "may_manage", "served_file", "upload_view", "visible_upload"]
