"""Image checks and previews with Pillow: decompression bombs and corrupt files are refused.

``make_previews(stream, media_type)`` decodes a (scanned, clean) image once and
returns its size and one WebP preview per width in ``PREVIEW_WIDTHS`` (never
upscaled). Previews carry no metadata: no EXIF (GPS, camera, time), no XMP;
only the colour profile is kept so colours stay right. The EXIF orientation is
applied to the pixels first, so a portrait photo stays upright without it.

``check_dimensions(header, media_type)`` reads only a header: the scan task
calls it before clamd sees the file. An image whose header announces more than
``MAX_IMAGE_PIXELS`` pixels is refused before its pixels are decoded (``DecompressionBombError`` and the
warning below it are both errors here); a truncated or corrupt one is refused
when decoding fails. Either raises ``ImageRejected`` with a reason for users.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TypeVar

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# 50 megapixels: above any camera a listing photo comes from (8,660 x 5,773), far below
# the gigapixel images a few kilobytes of PNG or JPEG can announce.
MAX_IMAGE_PIXELS = 50_000_000
PREVIEW_WIDTHS = (320, 1280)
WEBP_QUALITY = 80
# Bytes read for ``check_dimensions``: PNG, WebP and HEIC state their size in the first few
# hundred; a JPEG's comes after its metadata segments (at most 64 KiB each, a few of them).
HEADER_BYTES = 512 * 1024
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/heic": "HEIF"}

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

try:  # HEIC/HEIF (iPhone photos) through libheif
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - a deployment without HEIC support refuses HEIC files
    pass
else:
    register_heif_opener()


class ImageRejected(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Preview:
    name: str  # "w320"
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    previews: tuple[Preview, ...]


_TOO_MANY_PIXELS = f"The image has more than {MAX_IMAGE_PIXELS:,} pixels."
_Result = TypeVar("_Result")


def _open(stream: IO[bytes], media_type: str) -> ImageFile.ImageFile:
    """``Image.open`` for one accepted type, with Pillow's size warning an error (it reads the header only)."""
    expected = _FORMATS.get(media_type)
    if expected is None:
        raise ImageRejected(f"{media_type} is not an image type we accept")
    return Image.open(stream, formats=[expected])


def _bombs_refused(work: Callable[[], _Result]) -> _Result:
    """Run ``work()``; an image announcing too many pixels becomes ``ImageRejected``."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return work()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(_TOO_MANY_PIXELS) from None


def check_dimensions(header: IO[bytes], media_type: str) -> tuple[int, int] | None:
    """Refuse an image whose header announces more than ``MAX_IMAGE_PIXELS`` pixels, decoding nothing.

    ``header`` is a seekable stream of the file's first bytes (``HEADER_BYTES`` are enough
    for any header but a JPEG's with unusually large metadata in front). Returns
    (width, height), or None when the size is not in those bytes: the decoder's own
    check then still refuses a bomb, only later.
    """

    def read_size() -> tuple[int, int] | None:
        try:
            with _open(header, media_type) as image:
                return image.size
        except (ImageRejected, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise
        except Exception:  # noqa: BLE001 - a header cut short or odd: the full decode judges the file
            return None

    size = _bombs_refused(read_size)
    if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ImageRejected(_TOO_MANY_PIXELS)
    return size


def make_previews(stream: IO[bytes], media_type: str, widths: Sequence[int] = PREVIEW_WIDTHS) -> ImageInfo:
    """Decode the image in ``stream`` (of ``media_type``) and build its previews, or raise ``ImageRejected``."""

    def decode() -> ImageInfo:
        try:
            with _open(stream, media_type) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                previews = tuple(_preview(upright, target) for target in widths)
                return ImageInfo(*upright.size, previews)
        except (ImageRejected, Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError, UnidentifiedImageError):
            # Pillow reports truncated and malformed files as any of these.
            raise ImageRejected("The image is corrupt or truncated.") from None

    return _bombs_refused(decode)


def _preview(image: Image.Image, target: int) -> Preview:
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    copy = image.convert(mode)
    copy.thumbnail((target, target * 4), Image.Resampling.LANCZOS)  # bound by width; tall images stay readable
    out = io.BytesIO()
    # Only what is passed here is written: no exif, no xmp. The ICC profile keeps colours right.
    copy.save(
        out, "WEBP", quality=WEBP_QUALITY, method=4, exif=b"", xmp=b"", icc_profile=image.info.get("icc_profile") or b""
    )
    return Preview(f"w{target}", out.getvalue(), copy.width, copy.height)


__all__ = [
    "HEADER_BYTES",
    "MAX_IMAGE_PIXELS",
    "PREVIEW_WIDTHS",
    "ImageInfo",
    "ImageRejected",
    "Preview",
    "check_dimensions",
    "make_previews",
]
