"""The first bytes of an upload decide its type, and the store still receives every byte."""

from __future__ import annotations

import io

from services.streams import PrefixedStream, read_head


class ShortReads(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, as a socket or a chunked body may."""

    def __init__(self, data: bytes, step: int):
        self.data, self.step = data, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = len(self.data) if size is None or size < 0 else size
        part, self.data = self.data[: min(size, self.step)], self.data[min(size, self.step) :]
        return part


def test_read_head_keeps_reading_through_short_reads():
    assert read_head(ShortReads(b"%PDF-1.7\nrest", step=3), 8) == b"%PDF-1.7"


def test_read_head_of_a_short_stream_is_all_of_it():
    assert read_head(io.BytesIO(b"tiny"), 64) == b"tiny"
    assert read_head(io.BytesIO(b""), 64) == b""


def test_the_stream_after_its_head_reads_as_the_whole_file():
    data = bytes(range(256)) * 40
    stream = ShortReads(data, step=100)
    head = read_head(stream, 64)
    whole = PrefixedStream(head, stream)
    parts = []
    while part := whole.read(50):
        parts.append(part)
    assert b"".join(parts) == data


def test_reading_everything_returns_the_head_and_the_rest_at_once():
    stream = io.BytesIO(b"\x89PNG\r\n\x1a\nIHDR...")
    head = read_head(stream, 8)
    assert PrefixedStream(head, stream).read() == b"\x89PNG\r\n\x1a\nIHDR..."
