"""One secret, many purposes: a signature made for one thing never passes for another."""

from __future__ import annotations

import base64

import pytest

from services.signing import MAC_SIZE, Signer

SECRET = "x7Yq2P9vLmN4cR8tWb3Kz6Hs1Jd5Fg0A"
SIGNER = Signer(SECRET)


def test_a_mac_verifies_for_its_own_purpose_and_parts():
    sig = SIGNER.mac("storage-url", "GET", "media/a.jpg", 1700000000)
    assert len(sig) == MAC_SIZE
    assert SIGNER.verify("storage-url", sig, "GET", "media/a.jpg", 1700000000)
    # Made again by another Signer with the same secret: a second process agrees.
    assert Signer(SECRET).mac("storage-url", "GET", "media/a.jpg", 1700000000) == sig


def test_a_mac_made_for_one_purpose_never_verifies_for_another():
    purposes = [
        "cursor:jobs",
        "cursor:uploads",
        "unsubscribe",
        "storage-url",
        "phone-code-hash",
        "job-digest:phone_code",
        "job-digest:verify_email",
    ]
    macs = {purpose: SIGNER.mac(purpose, "same", "parts") for purpose in purposes}
    assert len(set(macs.values())) == len(purposes)
    for made_for, sig in macs.items():
        for other in purposes:
            assert SIGNER.verify(other, sig, "same", "parts") is (other == made_for)
    # The same holds for sealed tokens and job digests.
    token = SIGNER.seal("cursor:jobs", b'["2026-01-01",1]')
    assert SIGNER.unseal("cursor:jobs", token) == b'["2026-01-01",1]'
    assert SIGNER.unseal("cursor:uploads", token) is None
    assert SIGNER.unseal("unsubscribe", token) is None
    assert SIGNER.job_digest("phone_code", "job-1") != SIGNER.job_digest("verify_email", "job-1")


def test_tampered_parts_or_signatures_are_refused():
    sig = SIGNER.mac("storage-url", "PUT", "quarantine/incoming/u1", 1024, "image/png", 1700000000)
    parts = ("PUT", "quarantine/incoming/u1", 1024, "image/png", 1700000000)
    assert SIGNER.verify("storage-url", sig, *parts)
    assert not SIGNER.verify("storage-url", sig, "PUT", "quarantine/incoming/u1", 1025, "image/png", 1700000000)
    assert not SIGNER.verify("storage-url", sig, "PUT", "quarantine/incoming/u2", 1024, "image/png", 1700000000)
    assert not SIGNER.verify("storage-url", sig, *parts[:-1])
    assert not SIGNER.verify("storage-url", sig, *parts, "extra")
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    assert not SIGNER.verify("storage-url", flipped, *parts)
    # Moving text between parts changes the message: parts are never glued ambiguously.
    assert SIGNER.mac("p", "ab", "c") != SIGNER.mac("p", "a", "bc")
    with pytest.raises(ValueError, match="cannot hold a newline"):
        SIGNER.mac("p", "a\nb")
    assert not SIGNER.verify("p", SIGNER.mac("p", "a", "b"), "a\nb")


def test_truncated_or_extended_signatures_are_refused():
    sig = SIGNER.mac("unsubscribe", b"payload", size=16)
    assert SIGNER.verify("unsubscribe", sig, b"payload", size=16)
    assert sig == SIGNER.mac("unsubscribe", b"payload")[:16]
    for bad in (sig[:15], sig[:8], b"", sig + b"\x00"):
        assert not SIGNER.verify("unsubscribe", bad, b"payload", size=16)
    # A short MAC passed where the full one is expected is refused too.
    assert not SIGNER.verify("unsubscribe", sig, b"payload")
    text = SIGNER.text("storage-url", "GET", "a", 1)
    assert SIGNER.verify("storage-url", text, "GET", "a", 1)
    for bad in (text[:-1], text + "A", text[:-1] + ("A" if text[-1] != "A" else "B"), "é" + text[1:], ""):
        assert not SIGNER.verify("storage-url", bad, "GET", "a", 1)
    with pytest.raises(ValueError, match="not 4"):
        SIGNER.mac("p", "a", size=4)  # never fewer than 64 bits


def test_a_sealed_token_that_was_changed_is_refused():
    token = SIGNER.seal("unsubscribe", b'["u","*"]')
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    swapped = base64.urlsafe_b64encode(raw[:16] + b'["v","*"]').rstrip(b"=").decode()
    for bad in (swapped, token[:-2], token[:10], "", "not base64!", "é", token + "A"):
        assert SIGNER.unseal("unsubscribe", bad) is None


def test_another_secret_signs_differently():
    other = Signer(SECRET + "!")
    assert other.key("unsubscribe") != SIGNER.key("unsubscribe")
    assert not other.verify("storage-url", SIGNER.mac("storage-url", "GET", "a", 1), "GET", "a", 1)
    assert other.unseal("unsubscribe", SIGNER.seal("unsubscribe", b"x")) is None
    assert other.job_digest("phone_code", "job-1") != SIGNER.job_digest("phone_code", "job-1")
