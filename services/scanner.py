"""Virus scanning through clamd's INSTREAM command.

``ClamdScanner.scan(stream)`` sends a readable binary stream to clamd in
1 MiB chunks and returns a ``ScanResult``: ``clean``, or ``infected`` with the
signature name. Nothing is written to disk on our side; the bytes go straight
from storage to clamd.

Connection handling and response parsing come from the ``clamd`` package; two
of its methods are replaced: ``instream`` (the package sends 1 KiB chunks with
``send``, which halves throughput on small files and may send a chunk only in
part) and ``_init_socket`` (the package connects before it sets the timeout,
so an unanswering host would hang the worker).

Failures say what the caller should do: ``ScannerUnavailable`` (clamd down,
timing out, dropping the connection) may pass, so try again later and keep the
file quarantined; ``ScanRefused`` (clamd will never scan this stream, e.g. it
is over clamd's ``StreamMaxLength``) will not.

``Scanner`` is what the workers ask of a scanner; tests hand in their own.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

import clamd

from services.streams import Readable
from settings import Settings

CHUNK = 1024 * 1024


class ScannerUnavailable(Exception):
    """clamd could not be reached or did not finish the scan; the verdict is unknown."""

    public_detail = "The virus scanner is unavailable; the file stays quarantined and is scanned later."


class ScanRefused(Exception):
    """clamd answered that it will not scan this stream."""


@dataclass(frozen=True)
class ScanResult:
    verdict: str  # "clean" | "infected"
    signature: str | None = None
    scanned_bytes: int = 0

    @property
    def infected(self) -> bool:
        return self.verdict == "infected"


class Scanner(Protocol):
    def scan(self, stream: Readable) -> ScanResult:
        """The verdict on everything ``stream.read()`` yields; raises ``ScannerUnavailable`` or ``ScanRefused``."""
        ...


class _Streaming:
    """Mixed into the package's socket classes: timeout before connect, 1 MiB INSTREAM chunks."""

    # What the package's socket class (the other base) holds and does.
    timeout: float | None
    clamd_socket: socket.socket
    if TYPE_CHECKING:

        def _init_socket(self) -> None: ...

        def _close_socket(self) -> None: ...

        def _error_message(self, exception: BaseException) -> str: ...

        def _parse_response(self, msg: str) -> tuple[str, str | None, str]: ...

    def _connect(self, family: socket.AddressFamily, address: str | tuple[str, int]) -> None:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            raise clamd.ConnectionError(self._error_message(exc)) from None
        self.clamd_socket = sock

    def instream_chunks(self, stream: Readable, chunk_size: int = CHUNK) -> tuple[str, int]:
        """Send ``stream`` and return (clamd's one-line answer, bytes sent)."""
        sent = 0
        self._init_socket()
        try:
            try:
                self.clamd_socket.sendall(b"zINSTREAM\0")
                while True:
                    chunk = stream.read(chunk_size)
                    if not chunk:
                        break
                    self.clamd_socket.sendall(struct.pack("!L", len(chunk)))
                    self.clamd_socket.sendall(chunk)
                    sent += len(chunk)
                self.clamd_socket.sendall(struct.pack("!L", 0))
            except (BrokenPipeError, ConnectionResetError):
                # Over its StreamMaxLength clamd answers and closes while we still send: read why.
                answer = self._read_answer_quietly()
                if answer:
                    return answer, sent
                raise
            return self._read_answer(), sent
        finally:
            self._close_socket()

    def _read_answer_quietly(self) -> str:
        try:
            return self._read_answer()
        except OSError:
            return ""

    def _read_answer(self) -> str:
        # The z-prefixed command ends its answer with NUL rather than a newline.
        data = b""
        while not data.endswith(b"\0"):
            part = self.clamd_socket.recv(4096)
            if not part:
                break
            data += part
        return data.rstrip(b"\0").decode("utf-8", "replace").strip()


class _Unix(_Streaming, clamd.ClamdUnixSocket):
    def _init_socket(self) -> None:
        self._connect(socket.AF_UNIX, self.unix_socket)


class _Tcp(_Streaming, clamd.ClamdNetworkSocket):
    def _init_socket(self) -> None:
        self._connect(socket.AF_INET, (self.host, self.port))


class ClamdScanner:
    """Scans streams with the clamd at ``url`` (``unix:///path`` or ``tcp://host:port``)."""

    def __init__(self, url: str, *, timeout: float = 60.0, chunk_size: int = CHUNK) -> None:
        parsed = urlparse(url)
        self._client: _Streaming
        if parsed.scheme == "unix":
            self._client = _Unix(parsed.path, timeout=timeout)
        elif parsed.scheme == "tcp":
            self._client = _Tcp(parsed.hostname or "127.0.0.1", parsed.port or 3310, timeout=timeout)
        else:
            raise ValueError(f"not a clamd URL: {url!r}")
        self.url = url
        self.chunk_size = chunk_size

    def scan(self, stream: Readable) -> ScanResult:
        """Scan everything ``stream.read()`` yields; raises ``ScannerUnavailable`` or ``ScanRefused``."""
        try:
            answer, sent = self._client.instream_chunks(stream, self.chunk_size)
        except (clamd.ConnectionError, OSError) as exc:  # refused, reset, broken pipe, timeout
            raise ScannerUnavailable(f"clamd at {self.url}: {exc}") from None
        if not answer:
            raise ScannerUnavailable(f"clamd at {self.url} closed the connection without a verdict")
        if answer.endswith("ERROR"):
            if "size limit" in answer:
                raise ScanRefused(answer)
            raise ScannerUnavailable(answer)
        try:
            _, signature, status = self._client._parse_response(answer)
        except clamd.ResponseError:
            raise ScannerUnavailable(f"unexpected answer from clamd: {answer!r}") from None
        if status == "FOUND":
            return ScanResult("infected", signature, sent)
        if status == "OK":
            return ScanResult("clean", None, sent)
        raise ScannerUnavailable(f"unexpected answer from clamd: {answer!r}")

    def ping(self) -> bool:
        try:
            self._client._init_socket()
            try:
                self._client.clamd_socket.sendall(b"zPING\0")
                return self._client._read_answer() == "PONG"
            finally:
                self._client._close_socket()
        except (clamd.ConnectionError, OSError):
            return False


def make_scanner(settings: Settings) -> Scanner:
    return ClamdScanner(settings.clamd_address, timeout=settings.clamd_timeout)


__all__ = ["ClamdScanner", "ScanRefused", "ScanResult", "Scanner", "ScannerUnavailable", "make_scanner"]
