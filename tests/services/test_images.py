"""Previews: no metadata, upright, never upscaled; bombs and corrupt files refused; HEIC decoded."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.images import MAX_IMAGE_PIXELS, ImageRejected, make_previews
from tests.services.backends import jpeg_with_gps, png_bomb


def test_heic_photos_get_webp_previews():
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (400, 300), (10, 100, 200))).save(out, quality=60)
    info = make_previews(io.BytesIO(out.getvalue()), "image/heic")
    assert (info.width, info.height) == (400, 300)
    assert [(p.name, p.width) for p in info.previews] == [("w320", 320), ("w1280", 400)]
    assert all(Image.open(io.BytesIO(p.data)).format == "WEBP" for p in info.previews)


def test_previews_have_no_metadata_and_keep_transparency():
    info = make_previews(io.BytesIO(jpeg_with_gps()), "image/jpeg")
    for preview in info.previews:
        image = Image.open(io.BytesIO(preview.data))
        assert not image.getexif() and "xmp" not in image.info and b"GPS" not in preview.data
    rgba = io.BytesIO()
    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(rgba, "PNG")
    small = make_previews(io.BytesIO(rgba.getvalue()), "image/png").previews[0]
    assert Image.open(io.BytesIO(small.data)).mode == "RGBA" and small.width == 10


@pytest.mark.parametrize("side", [30000, 8000])  # far over (error) and just over (warning) the limit
def test_decompression_bombs_are_refused_before_decoding(side):
    assert side * side > MAX_IMAGE_PIXELS
    with pytest.raises(ImageRejected, match="pixels"):
        make_previews(io.BytesIO(png_bomb(side, side)), "image/png")


def test_a_file_of_another_format_than_declared_is_refused():
    with pytest.raises(ImageRejected):
        make_previews(io.BytesIO(jpeg_with_gps()), "image/png")
    with pytest.raises(ImageRejected):
        make_previews(io.BytesIO(b"%PDF-1.4"), "application/pdf")
