"""Stripe's webhook signature, checked by the ``stripe`` library, and the event it signs.

Stripe signs ``"<timestamp>.<body>"`` with HMAC-SHA256 under the endpoint's
secret and sends ``Stripe-Signature: t=<timestamp>,v1=<hex>`` (several ``v1``
while a secret is being rolled). ``verify_event`` lets the library compare the
signatures and refuses a timestamp more than ``tolerance`` seconds from ``now``
either way (the library only looks back, and only at the wall clock).
``sign_event`` makes the same header, for the sandbox and for tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import stripe

from services.payments.provider import MalformedEvent, ProviderEvent, SignatureMissing, SignatureRejected

MAX_ID_LENGTH = 255


def sign_event(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header Stripe would send with ``body`` at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _timestamp(header: str) -> int:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            return int(value)
    raise SignatureRejected("no timestamp in the signature header")


def verify_event(body: bytes, header: str | None, *, secret: str, tolerance: int, now: float) -> ProviderEvent:
    """The event ``body`` carries, once ``header`` proves Stripe sent it within ``tolerance`` seconds of ``now``."""
    if not header or not header.strip():
        raise SignatureMissing()
    if not secret:
        raise SignatureRejected("the Stripe webhook is not configured")
    try:
        text = body.decode("utf-8")
        # tolerance=None: the library checks the signature only; the time window is ours (now, both ways).
        stripe.WebhookSignature.verify_header(text, header, secret, None)
    except (UnicodeDecodeError, stripe.SignatureVerificationError):
        raise SignatureRejected("bad signature") from None
    if abs(now - _timestamp(header)) > tolerance:
        raise SignatureRejected("timestamp outside the tolerance")
    return decode_event(text)


def decode_event(text: str) -> ProviderEvent:
    """A Stripe event document as a ``ProviderEvent`` (``MalformedEvent`` when it is not one)."""
    try:
        payload = json.loads(text)
    except ValueError:
        raise MalformedEvent("the body is not JSON") from None
    if not isinstance(payload, dict) or payload.get("object") != "event":
        raise MalformedEvent("the body is not a Stripe event")
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    event_id, event_type, created = payload.get("id"), payload.get("type"), payload.get("created")
    if not isinstance(obj, dict) or not _short_text(event_id) or not _short_text(event_type):
        raise MalformedEvent("the event has no id, type or object")
    if not isinstance(created, int) or isinstance(created, bool):
        raise MalformedEvent("the event has no creation time")
    metadata = obj.get("metadata")
    if "client_secret" in obj and isinstance(data, dict):
        # A PaymentIntent's event carries its client secret; the stored event keeps no copy of it.
        obj = {name: value for name, value in obj.items() if name != "client_secret"}
        payload = dict(payload, data=dict(data, object=obj))
    return ProviderEvent(
        id=str(event_id),
        type=str(event_type),
        created=created,
        object_type=_text(obj.get("object")),
        object_id=_text(obj.get("id")),
        status=_text(obj.get("status")) or None,
        amount=_integer(obj.get("amount")),
        currency=_text(obj.get("currency")) or None,
        metadata={str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {},
        payload=payload,
    )


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and "\x00" not in value


def _text(value: Any) -> str:
    return value[:MAX_ID_LENGTH] if _short_text(value) else ""


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


__all__ = ["decode_event", "sign_event", "verify_event"]
