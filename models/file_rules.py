"""What a file is, from its bytes and its name alone: its media type, the names it is kept and
stored under, and what each upload purpose accepts.

The type of a file is decided from its first ``SNIFF_BYTES`` (``detect_media_type``, magic
numbers), never from the client's Content-Type or file name. Each purpose allows some types and a
size (``PurposeRule``; the sizes come from settings). The client's file name is metadata only
(``display_name``); storage keys use an ASCII stem of it (``storage_stem``). The upload rows that
use these rules are in ``models/uploads.py``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic")
MEDIA_TYPES = (*IMAGE_TYPES, "application/pdf")
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/heic": "heic",
    "application/pdf": "pdf",
}
# Bytes read from the start of a file to decide its type.
SNIFF_BYTES = 64


@dataclass(frozen=True)
class PurposeRule:
    purpose: str
    types: tuple[str, ...]
    max_bytes: int

    def allows(self, media_type: str | None) -> bool:
        return media_type in self.types


def purpose_rules(settings) -> dict[str, PurposeRule]:
    return {
        "listing_photo": PurposeRule("listing_photo", IMAGE_TYPES, settings.upload_photo_max_bytes),
        "document": PurposeRule("document", MEDIA_TYPES, settings.upload_document_max_bytes),
        "avatar": PurposeRule("avatar", ("image/jpeg", "image/png", "image/webp"), settings.upload_avatar_max_bytes),
        # Files sent in a conversation: what a document may be (a pre-approval letter, a floor plan, a photo).
        "attachment": PurposeRule("attachment", MEDIA_TYPES, settings.upload_document_max_bytes),
    }


def unsupported_reason(purpose: str, allowed, found: str | None) -> str:
    """Why a file of type ``found`` is refused for ``purpose``, which allows ``allowed``."""
    return f"A {purpose} must be one of {', '.join(allowed)}; this file's bytes are {found or 'none of those'}."


_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}


def detect_media_type(head: bytes) -> str | None:
    """The type the file's first bytes announce (magic numbers), or None for anything else."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        # ISO base media: the major brand, then compatible brands until the box ends.
        box = int.from_bytes(head[:4], "big")
        brands = {head[8:12]} | {head[i : i + 4] for i in range(16, min(box, len(head)) - 3, 4)}
        if brands & _HEIF_BRANDS:
            return "image/heic"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


_UNSAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


def display_name(raw: str | None, fallback: str = "upload") -> str:
    """The client's file name as we keep it: metadata only, never a path.

    Directory parts (``/`` or ``\\``) are dropped, control and format characters
    (NUL, newlines, right-to-left overrides, zero-width characters) removed,
    whitespace collapsed, the result NFC-normalised and at most 200 characters.
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(" " if ch.isspace() else ch for ch in name if ch.isspace() or unicodedata.category(ch)[0] != "C")
    name = " ".join(name.split()).strip(" .")
    return name[:200] or fallback


def storage_stem(name: str) -> str:
    """An ASCII slug of a display name for the last segment of a storage key."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    stem = ascii_name.rsplit(".", 1)[0] if "." in ascii_name else ascii_name
    stem = _UNSAFE_STEM.sub("_", stem).strip("._-")
    return stem[:80] or "file"


__all__ = [
    "EXTENSIONS",
    "IMAGE_TYPES",
    "MEDIA_TYPES",
    "SNIFF_BYTES",
    "PurposeRule",
    "detect_media_type",
    "display_name",
    "purpose_rules",
    "storage_stem",
    "unsupported_reason",
]
