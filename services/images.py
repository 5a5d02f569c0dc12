"""Image checks and previews with Pillow: decompression bombs and corrupt files are refused.

``make_previews(stream, media_type)`` decodes a (scanned, clean) image once and
returns its size and one WebP preview per width in ``PREVIEW_WIDTHS`` (never
upscaled). Previews carry no metadata: no EXIF (GPS, camera, time), no XMP;
only the colour profile is kept so colours stay right. The EXIF orientation is
applied to the pixels first, so a portrait photo stays upright without it.

An image whose header announces more than ``MAX_IMAGE_PIXELS`` pixels is
refused before its pixels are decoded (``DecompressionBombError`` and the
warning below it are both errors here); a truncated or corrupt one is refused
when decoding fails. Either raises ``ImageRejected`` with a reason for users.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps

# 50 megapixels: above any camera a listing photo comes from (8,660 x 5,773), far below
# the gigapixel images a few kilobytes of PNG or JPEG can announce.
MAX_IMAGE_PIXELS = 50_000_000
PREVIEW_WIDTHS = (320, 1280)
WEBP_QUALITY = 80
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/heic": "HEIF"}

Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

try:  # HEIC/HEIF (iPhone photos) through libheif
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - a deployment without HEIC support refuses HEIC files
    register_heif_opener = None
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


def make_previews(stream, media_type: str, widths=PREVIEW_WIDTHS) -> ImageInfo:
    """Decode the image in ``stream`` (of ``media_type``) and build its previews, or raise ``ImageRejected``."""
    expected = _FORMATS.get(media_type)
    if expected is None:
        raise ImageRejected(f"{media_type} is not an image type we accept")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(stream, formats=[expected]) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                width, height = upright.size
                previews = tuple(_preview(upright, target) for target in widths)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageRejected(f"The image has more than {MAX_IMAGE_PIXELS:,} pixels.") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError, Image.UnidentifiedImageError):
            # Pillow reports truncated and malformed files as any of these.
            raise ImageRejected("The image is corrupt or truncated.") from None
    return ImageInfo(width, height, previews)


def _preview(image: Image.Image, target: int) -> Preview:
    mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
    copy = image.convert(mode)
    copy.thumbnail((target, target * 4), Image.Resampling.LANCZOS)  # bound by width; tall images stay readable
    out = io.BytesIO()
    # Only what is passed here is written: no exif, no xmp. The ICC profile keeps colours right.
    copy.save(out, "WEBP", quality=WEBP_QUALITY, method=4, exif=b"", xmp=b"",
              icc_profile=image.info.get("icc_profile") or b"")
    return Preview(f"w{target}", out.getvalue(), copy.width, copy.height)


__all__ = ["make_previews", "ImageRejected", "ImageInfo", "Preview", "MAX_IMAGE_PIXELS", "PREVIEW_WIDTHS"]
