"""Reading the start of a binary stream without losing it.

A file's type is decided from its first bytes before anything is stored, yet the
store must still receive the whole file from its first byte: ``read_head`` takes
the first bytes, ``PrefixedStream`` hands them back in front of the rest.

``Readable`` is all any of these streams is asked for: ``read(size)``, which
returns ``b""`` once the stream is exhausted.
"""

from __future__ import annotations

from typing import Protocol


class Readable(Protocol):
    """A binary stream read in chunks: a request body, an open file, an S3 object's body."""

    def read(self, size: int = -1, /) -> bytes: ...


def read_head(stream: Readable, count: int) -> bytes:
    """Up to ``count`` bytes from the start of ``stream``; fewer only when the stream ends first.

    A stream may return short reads (a socket, a chunked body), so this reads until it has
    ``count`` bytes or the stream is exhausted.
    """
    head = b""
    while len(head) < count:
        part = stream.read(count - len(head))
        if not part:
            break
        head += part
    return head


class PrefixedStream:
    """A readable stream whose first bytes (``head``) were read from ``stream`` already.

    Reads return ``head`` first, then the rest of ``stream``, as if nothing had been read.
    """

    def __init__(self, head: bytes, stream: Readable) -> None:
        self.head, self.stream = head, stream

    def read(self, size: int = -1) -> bytes:
        if self.head:
            if size is None or size < 0:
                part, self.head = self.head + self.stream.read(), b""
            else:
                part, self.head = self.head[:size], self.head[size:]
            return part
        return self.stream.read(size)
