"""Proof that a webhook request came from its provider: SendGrid's ECDSA signature, Twilio's HMAC.

Both checks raise ``SignatureMissing`` (the request carries no signature: 401)
or ``SignatureRejected`` (forged, replayed, signed by another key, or the
webhook is not configured: 403). Neither says which part failed, beyond the
log line the caller writes.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator, get_signature_algorithm

log = logging.getLogger("hearth.webhooks")

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"
TWILIO_SIGNATURE_SETTINGS = "X-Twilio-Webhooks-Signature-Settings"
# A signed SendGrid request older (or newer) than this is a replay, not a delivery.
SENDGRID_TOLERANCE_SECONDS = 600


class SignatureMissing(Exception):
    """The request has no signature at all."""


class SignatureRejected(Exception):
    """The signature does not prove the request came from the provider (or the webhook is off)."""


@functools.lru_cache(maxsize=4)
def sendgrid_public_key(encoded: str) -> ec.EllipticCurvePublicKey | None:
    """The verification key SendGrid shows (base64 DER SubjectPublicKeyInfo, or PEM); None when unusable."""
    try:
        if encoded.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(encoded.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(encoded.split()), validate=True))
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
        log.error("SENDGRID_WEBHOOK_PUBLIC_KEY is not a public key; the SendGrid webhook refuses every request")
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        log.error("SENDGRID_WEBHOOK_PUBLIC_KEY is not a P-256 key; the SendGrid webhook refuses every request")
        return None
    return key


def verify_sendgrid(public_key: str, signature: str | None, timestamp: str | None, body: bytes, *, now: float) -> None:
    """Check SendGrid's signature over ``timestamp + body`` and the timestamp's freshness."""
    key = sendgrid_public_key(public_key) if public_key else None
    if key is None:
        raise SignatureRejected("the SendGrid webhook is not configured")
    if not signature or not timestamp:
        raise SignatureMissing()
    timestamp = timestamp.strip()
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureRejected("malformed timestamp")
    if abs(now - int(timestamp)) > SENDGRID_TOLERANCE_SECONDS:
        raise SignatureRejected("stale timestamp")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        raise SignatureRejected("bad signature") from None


def verify_twilio(
    auth_token: str,
    url: str,
    params: dict[str, list[str]],
    signature: str | None,
    signature_settings: str | None = None,
) -> None:
    """Check ``X-Twilio-Signature`` over the URL Twilio called and its form parameters.

    ``params`` maps each name to all of its values, as Twilio signs every one.
    """
    if not auth_token:
        raise SignatureRejected("the Twilio webhook is not configured")
    if not signature:
        raise SignatureMissing()
    algorithm = get_signature_algorithm(signature_settings)
    if not RequestValidator(auth_token).validate(url, _FormParams(params), signature.strip(), algorithm):
        raise SignatureRejected("bad signature")


class _FormParams(dict[str, list[str]]):
    """Form parameters with every value of a repeated name (``RequestValidator`` asks ``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


__all__ = [
    "SENDGRID_SIGNATURE",
    "SENDGRID_TIMESTAMP",
    "SENDGRID_TOLERANCE_SECONDS",
    "TWILIO_SIGNATURE",
    "TWILIO_SIGNATURE_SETTINGS",
    "SignatureMissing",
    "SignatureRejected",
    "sendgrid_public_key",
    "verify_sendgrid",
    "verify_twilio",
]
