"""Types come from magic numbers; names are metadata, never paths."""

from __future__ import annotations

import pytest

from models.file_rules import detect_media_type, display_name, purpose_rules, storage_stem
from settings import Settings
from tests.services.backends import jpeg_with_gps, pdf, png


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1heicmiaf", "image/heic"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", None),  # an MP4 video
        (b"%PDF-1.7\n", "application/pdf"),
        (b"GIF89a", None),
        (b"<svg xmlns=", None),
        (b"MZ\x90\x00", None),
        (b"", None),
    ],
)
def test_detect_media_type(head, expected):
    assert detect_media_type(head) == expected


def test_generated_files_are_detected():
    assert detect_media_type(jpeg_with_gps()[:64]) == "image/jpeg"
    assert detect_media_type(png()[:64]) == "image/png"
    assert detect_media_type(pdf()[:64]) == "application/pdf"


def test_purposes_allow_their_types_only():
    rules = purpose_rules(Settings.from_env({}))
    assert rules["listing_photo"].allows("image/heic") and not rules["listing_photo"].allows("application/pdf")
    assert rules["document"].allows("application/pdf") and rules["document"].allows("image/png")
    assert not rules["avatar"].allows("image/heic") and not rules["avatar"].allows(None)
    assert rules["listing_photo"].max_bytes == 20 * 1024 * 1024 and rules["document"].max_bytes == 50 * 1024 * 1024


@pytest.mark.parametrize(
    ("raw", "shown", "stem"),
    [
        ("C:\\Users\\me\\Desktop\\plan.pdf", "plan.pdf", "plan"),
        ("../../.ssh/id_rsa", "id_rsa", "id_rsa"),
        ("Ölfeld – Grundriss.pdf", "Ölfeld – Grundriss.pdf", "Olfeld_Grundriss"),
        ("家.jpg", "家.jpg", "file"),
        ("x" * 300 + ".jpg", "x" * 200, "x" * 80),
        ("\x07bell\x1b[31m.png", "bell[31m.png", "bell_31m"),
        (None, "upload", "upload"),
    ],
)
def test_display_names_and_storage_stems(raw, shown, stem):
    assert display_name(raw) == shown
    assert storage_stem(display_name(raw)) == stem
