"""What the money code asks of a payments provider: the interface, its results and its errors.

Amounts are integer minor units (cents) and currencies ISO 4217 lower case, as
Stripe takes them. Every call that moves money takes an ``idempotency_key``: the
same key with the same parameters returns the object the first call made and
never makes a second one, so a job may repeat a call after any failure.

Errors: ``ProviderUnavailable`` is transient (the provider could not be reached,
timed out, answered 429 or 5xx): the job retries, with the same key.
``ProviderRejected`` is permanent (any other 4xx: a declined card, an invalid
request, the same key reused with other parameters). A webhook whose request
carries no signature raises ``SignatureMissing`` (401), one whose signature does
not verify or is too old ``SignatureRejected`` (403).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from services.webhook_signatures import SignatureMissing, SignatureRejected

STRIPE_SIGNATURE = "Stripe-Signature"


@dataclass(frozen=True)
class ProviderIntent:
    """A payment the frontend completes (a Stripe PaymentIntent) with ``client_secret``."""

    id: str
    client_secret: str
    status: str
    amount: int
    currency: str


@dataclass(frozen=True)
class ProviderResult:
    """A refund or a payout (Stripe Refund, Transfer) as the provider recorded it."""

    id: str
    status: str
    amount: int
    currency: str


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook event. ``object_*``, ``status``, ``amount``, ``currency`` and ``metadata``
    describe the object it is about (``data.object``); ``payload`` is the whole event as sent."""

    id: str
    type: str
    created: int
    object_type: str
    object_id: str
    status: str | None
    amount: int | None
    currency: str | None
    metadata: dict[str, str] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)


class ProviderUnavailable(Exception):
    """Transient: the request may be repeated later with the same idempotency key."""


class ProviderRejected(Exception):
    """Permanent: the provider refused the request (``code`` is its error code, ``status`` the HTTP status)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class MalformedEvent(ValueError):
    """A correctly signed body that is not a Stripe event (not JSON, or no id, type or object)."""


class PaymentProvider(Protocol):
    """A payments backend: ``StripeProvider`` in production, ``SandboxProvider`` in development and tests."""

    name: str

    def create_deposit(
        self, *, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str], description: str
    ) -> ProviderIntent:
        """A PaymentIntent for ``amount`` the buyer completes in the frontend; its outcome arrives by webhook."""
        ...

    def refund(
        self, *, payment_ref: str, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str]
    ) -> ProviderResult:
        """Refund ``amount`` of the PaymentIntent ``payment_ref`` to its payer."""
        ...

    def payout(
        self,
        *,
        destination: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
        transfer_group: str,
    ) -> ProviderResult:
        """Transfer ``amount`` to the connected account ``destination`` (the seller)."""
        ...

    def parse_webhook(self, body: bytes, signature: str | None, *, now: float) -> ProviderEvent:
        """Verify the ``Stripe-Signature`` header over ``body`` and decode the event.

        Raises ``SignatureMissing``, ``SignatureRejected``, or ``MalformedEvent`` for a signed body
        that is not an event.
        """
        ...


__all__ = [
    "STRIPE_SIGNATURE",
    "MalformedEvent",
    "PaymentProvider",
    "ProviderEvent",
    "ProviderIntent",
    "ProviderRejected",
    "ProviderResult",
    "ProviderUnavailable",
    "SignatureMissing",
    "SignatureRejected",
]
