"""Schemas of uploads, upload intents, downloads and listing media."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.schemas import Cursor, Request, Response, line

Purpose = Literal["listing_photo", "document", "avatar", "attachment"]
UploadStatus = Literal["awaiting_upload", "pending_scan", "scanning", "clean", "infected", "rejected"]
MediaType = Literal["image/jpeg", "image/png", "image/webp", "image/heic", "application/pdf"]
Variant = Literal["original", "w320", "w1280"]
FileName = Annotated[
    str,
    line(
        255,
        min_length=1,
        description="The file's name on the client; kept, sanitised, as metadata only",
        examples=["kitchen.jpg"],
    ),
]
UploadId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$",
        description="An upload id",
        examples=["8d3c1b1e-2f59-4b5a-9a51-2f1c8e0f4d2a"],
    ),
]


class UploadQuery(Request):
    purpose: Annotated[Purpose, msgspec.Meta(description="What the file is for; decides the types and size allowed")]
    filename: FileName | None = None


class UploadIntentRequest(Request):
    purpose: Purpose
    filename: FileName
    content_type: Annotated[
        MediaType, msgspec.Meta(description="The type the file will have; checked against its bytes at completion")
    ]
    size: Annotated[
        int, msgspec.Meta(ge=1, le=10 * 1024**3, description="Exact size in bytes; checked against the purpose's cap")
    ]


class UploadVariantView(Response):
    name: Variant
    url: str
    content_type: str | None
    size: int | None
    width: int | None
    height: int | None


class UploadView(Response):
    id: str
    purpose: Purpose
    status: UploadStatus
    filename: str
    content_type: MediaType | None
    size: int | None
    sha256: str | None
    signature: Annotated[str | None, msgspec.Meta(description="What the virus scanner found (infected)")]
    reject_reason: Annotated[str | None, msgspec.Meta(description="Why the file was refused (rejected)")]
    scan_job_id: str | None
    variants: list[UploadVariantView]
    created_at: str
    scanned_at: str | None


class UploadList(Response):
    items: list[UploadView]
    next_cursor: str | None


class UploadListQuery(Request):
    purpose: Purpose | None = None
    status: UploadStatus | None = None
    cursor: Cursor | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 50


class UploadTarget(Response):
    method: Literal["PUT"]
    url: str
    headers: dict[str, str]
    expires_at: str


class UploadIntentView(Response):
    upload: UploadView
    upload_target: UploadTarget
    complete_url: str


class DownloadVariantQuery(Request):
    variant: Annotated[Variant, msgspec.Meta(description="`original`, or a WebP preview of an image")] = "original"


class SignedUploadQuery(Request):
    expires: Annotated[int, msgspec.Meta(ge=0, description="Unix time the URL stops working")]
    sig: Annotated[str, line(100, min_length=1, description="The URL's signature")]


class PhotosRequest(Request):
    upload_ids: Annotated[
        list[UploadId], msgspec.Meta(max_length=100, description="Every photo of the listing, in order")
    ]
    cover: UploadId | None = None


class ListingPhoto(Response):
    upload_id: str
    position: int
    is_cover: bool
    width: int | None
    height: int | None
    variants: list[UploadVariantView]


class ListingPhotos(Response):
    property_id: str
    items: list[ListingPhoto]


class DocumentAttachRequest(Request):
    upload_id: UploadId


class ListingDocument(Response):
    upload_id: str
    filename: str
    content_type: str | None
    size: int | None
    url: str
    attached_at: str


class ListingDocuments(Response):
    property_id: str
    items: list[ListingDocument]
