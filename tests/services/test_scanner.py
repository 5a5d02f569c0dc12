"""clamd INSTREAM through ``ClamdScanner``: verdicts, large chunks, and what counts as "unavailable"."""

from __future__ import annotations

import io
import socket

import pytest

from services.scanner import CHUNK, ClamdScanner, ScannerUnavailable, ScanRefused
from tests.services.backends import clamd_url, eicar


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.sizes = []

    def read(self, size=-1):
        self.sizes.append(size)
        return super().read(size)


def test_verdicts_from_a_real_clamd():
    scanner = ClamdScanner(clamd_url(), timeout=10)
    assert scanner.ping()
    clean = scanner.scan(io.BytesIO(b"just a house"))
    assert (clean.verdict, clean.signature, clean.scanned_bytes) == ("clean", None, 12)
    found = scanner.scan(io.BytesIO(b"%PDF-1.4\n" + b"x" * (3 * CHUNK) + eicar() + b"\n%%EOF"))
    assert found.infected and found.signature == "Eicar-Test-Signature.UNOFFICIAL"


def test_the_stream_goes_in_one_mebibyte_chunks():
    reader = CountingReader(b"\0" * (5 * CHUNK + 10))
    result = ClamdScanner(clamd_url(), timeout=10).scan(reader)
    assert result.scanned_bytes == 5 * CHUNK + 10
    assert set(reader.sizes) == {CHUNK}


def test_no_clamd_is_unavailable(tmp_path):
    scanner = ClamdScanner(f"unix://{tmp_path / 'missing.sock'}", timeout=1)
    assert not scanner.ping()
    with pytest.raises(ScannerUnavailable):
        scanner.scan(io.BytesIO(b"x"))
    with socket.socket() as sock:  # a TCP port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ScannerUnavailable):
        ClamdScanner(f"tcp://127.0.0.1:{port}", timeout=1).scan(io.BytesIO(b"x"))


def test_a_stream_over_clamds_limit_is_refused_not_retried(tmp_path):
    from ops.clamd import ClamdServer, clamd_binary

    server = ClamdServer(tmp_path / "small", clamd_binary(), stream_max="1M")
    (tmp_path / "small").mkdir()
    server.start()
    try:
        with pytest.raises(ScanRefused):
            ClamdScanner(server.url, timeout=10).scan(io.BytesIO(b"\0" * (3 * CHUNK)))
    finally:
        server.stop()


def test_urls_must_name_unix_or_tcp():
    with pytest.raises(ValueError, match="not a clamd URL"):
        ClamdScanner("http://clamd:3310")
