"""Everything Hearth signs with ``SECRET_KEY``, under one key per purpose.

One secret signs page cursors, unsubscribe links, local-disk storage URLs,
phone code hashes and the secrets a job derives from its id. Each use names a
purpose (``"cursor:jobs"``, ``"unsubscribe"``, ``"storage-url"``, ...) and gets a
key of its own, ``SHA-256(purpose + ":" + secret)``: a MAC made for one purpose
never verifies for another, so a page cursor can never pass for a download
link. This is the derivation the unsubscribe links, cursors and storage URLs
have always used, so what was signed before keeps verifying; it is sound for
the random secret of at least 32 characters production settings require.

A message is one or more parts (``str``, ``bytes`` or ``int``) joined with
``"\\n"``. No part may hold a ``"\\n"``: two different lists of parts never sign
the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import TypeAlias

MAC_SIZE = 32  # SHA-256
MIN_MAC_SIZE = 8  # truncated MACs keep at least 64 bits

# One part of a signed message: text, raw bytes, or a number (written in decimal).
Part: TypeAlias = str | bytes | int


def _message(parts: tuple[Part, ...]) -> bytes:
    if not parts:
        raise ValueError("nothing to sign")
    encoded = [part if isinstance(part, bytes) else str(part).encode() for part in parts]
    if any(b"\n" in part for part in encoded):
        raise ValueError("a signed part cannot hold a newline")
    return b"\n".join(encoded)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Signer:
    """HMAC-SHA256 under a key derived for each purpose from one secret.

    Cheap to make; keys are derived once per purpose and kept. Thread-safe.
    """

    def __init__(self, secret: str):
        self._secret = secret
        self._keys: dict[str, bytes] = {}

    def key(self, purpose: str) -> bytes:
        """The key of ``purpose``: the same for every ``Signer`` made with this secret."""
        key = self._keys.get(purpose)
        if key is None:
            key = self._keys[purpose] = hashlib.sha256(f"{purpose}:{self._secret}".encode()).digest()
        return key

    def mac(self, purpose: str, *parts: Part, size: int = MAC_SIZE) -> bytes:
        """The first ``size`` bytes of the MAC of ``parts`` for ``purpose``."""
        if not MIN_MAC_SIZE <= size <= MAC_SIZE:
            raise ValueError(f"a MAC has {MIN_MAC_SIZE} to {MAC_SIZE} bytes, not {size}")
        return hmac.new(self.key(purpose), _message(parts), hashlib.sha256).digest()[:size]

    def text(self, purpose: str, *parts: Part, size: int = MAC_SIZE) -> str:
        """``mac(...)`` as unpadded URL-safe base64, for a query string."""
        return _b64(self.mac(purpose, *parts, size=size))

    def verify(self, purpose: str, sig: bytes | str, *parts: Part, size: int = MAC_SIZE) -> bool:
        """True when ``sig`` is exactly what ``mac`` (bytes) or ``text`` (str) gives for these parts.

        Compared in constant time; a truncated, extended or altered ``sig`` is
        False, and so are parts that ``mac`` would refuse.
        """
        try:
            expected = self.mac(purpose, *parts, size=size)
        except ValueError:
            return False
        if isinstance(sig, str):
            # compare_digest refuses a str holding non-ASCII characters; a signature never holds one.
            return sig.isascii() and hmac.compare_digest(_b64(expected), sig)
        return hmac.compare_digest(expected, bytes(sig))

    def seal(self, purpose: str, payload: bytes, *, size: int = 16) -> str:
        """A token carrying ``payload`` in the clear and its MAC: ``base64url(mac[:size] + payload)``."""
        return _b64(self.mac(purpose, payload, size=size) + payload)

    def unseal(self, purpose: str, token: str, *, size: int = 16) -> bytes | None:
        """The payload of a token ``seal`` made for ``purpose`` with this secret, else None."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except ValueError:  # not base64, or not ASCII
            return None
        sig, payload = raw[:size], raw[size:]
        return payload if self.verify(purpose, sig, payload, size=size) else None

    def job_digest(self, purpose: str, job_id: uuid.UUID | str) -> bytes:
        """A secret derived from a job's id: the same for every run of the job.

        What a job mails or texts (a link token, a code) is derived this way, so
        a retried or redelivered job sends the same one and it is never stored
        in clear.
        """
        return self.mac(f"job-digest:{purpose}", str(job_id))


__all__ = ["MAC_SIZE", "MIN_MAC_SIZE", "Part", "Signer"]
