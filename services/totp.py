"""Time-based one-time codes (RFC 6238) for two-factor login, and the sealing of their secrets.

A factor's shared secret is what an authenticator app holds; anyone with it makes valid codes, so
it is stored sealed (AES-256-GCM under a key derived from ``SECRET_KEY`` for this purpose alone,
with the factor's id as associated data, so a sealed secret copied onto another factor row does
not open). Codes are the usual six digits every 30 seconds; one step either side is accepted for
clock drift, and the caller records the step a code was accepted for, so no code works twice.
"""

from __future__ import annotations

import hmac
import os
import time
import urllib.parse
from collections.abc import Callable

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.signing import Signer

PERIOD_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1  # codes of the previous and the next step are accepted too
ISSUER = "Hearth"
_NONCE_BYTES = 12


class SealedSecretError(Exception):
    """A sealed secret does not open with this key for this factor (tampered, or another SECRET_KEY)."""


class TotpCodes:
    """Makes and checks TOTP secrets and codes; thread-safe, no I/O."""

    def __init__(self, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(key) != 32:
            raise ValueError("the sealing key has 32 bytes")
        self._aead = AESGCM(key)
        self.clock = clock

    @classmethod
    def from_secret_key(cls, secret_key: str, *, clock: Callable[[], float] = time.time) -> TotpCodes:
        """Sealing under ``SECRET_KEY``'s key for this purpose (services.signing's derivation)."""
        return cls(Signer(secret_key).key("mfa:totp-secret"), clock=clock)

    @staticmethod
    def new_secret() -> str:
        """A fresh base32 secret of 160 bits (RFC 4226's recommended length)."""
        return pyotp.random_base32(32)

    def seal(self, secret: str, factor_id: object) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), _aad(factor_id))

    def open(self, sealed: bytes, factor_id: object) -> str:
        data = bytes(sealed)
        try:
            return self._aead.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], _aad(factor_id)).decode()
        except InvalidTag:
            raise SealedSecretError("the factor's secret does not open") from None

    def step(self) -> int:
        """The current time step (Unix time / 30)."""
        return int(self.clock()) // PERIOD_SECONDS

    def matching_step(self, secret: str, code: str, *, after: int | None) -> int | None:
        """The time step ``code`` belongs to, within the drift allowed and later than ``after``; else None.

        Every candidate step is compared (in constant time), whether or not an earlier one matched.
        """
        if len(code) != DIGITS or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_SECONDS)
        now = self.step()
        found = None
        for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
            expected = totp.at(step * PERIOD_SECONDS)
            if hmac.compare_digest(expected, code) and (after is None or step > after) and found is None:
                found = step
        return found

    @staticmethod
    def uri(secret: str, account: str, *, issuer: str = ISSUER) -> str:
        """The ``otpauth://totp/...`` URI an authenticator app reads: ``issuer`` (Hearth) and the account."""
        label = urllib.parse.quote(f"{issuer}:{account}", safe="@:")
        query = urllib.parse.urlencode(
            {"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": PERIOD_SECONDS}
        )
        return f"otpauth://totp/{label}?{query}"

    @staticmethod
    def qr_svg(uri: str) -> str:
        """``uri`` as a QR code in an SVG document (black on white, with its quiet zone)."""
        return segno.make(uri, error="m", micro=False).svg_inline(scale=4)


def _aad(factor_id: object) -> bytes:
    return f"mfa-factor:{factor_id}".encode()


__all__ = ["DIGITS", "ISSUER", "PERIOD_SECONDS", "SealedSecretError", "TotpCodes"]
