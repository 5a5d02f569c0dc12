"""``StripeProvider``: PaymentIntents, Refunds and Connect Transfers through the official ``stripe`` library.

The client never retries by itself (``max_network_retries=0``): the money jobs
own retries, and repeat a call with the same idempotency key, which Stripe
answers with the object the first call made. ``STRIPE_API_URL`` points the
client elsewhere (the provider stub, in tests).
"""

from __future__ import annotations

from typing import Any

import stripe

from services.payments.provider import (
    ProviderEvent,
    ProviderIntent,
    ProviderRejected,
    ProviderResult,
    ProviderUnavailable,
)
from services.payments.webhook import verify_event

# Stripe answers 409 to a request whose idempotency key another request is still using: not a refusal.
_TRANSIENT_CODES = frozenset({"idempotency_key_in_use", "lock_timeout"})


def _classified(exc: stripe.StripeError) -> Exception:
    """``ProviderUnavailable`` for what may pass (network, timeout, 429, 5xx), else ``ProviderRejected``."""
    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return ProviderUnavailable(f"Stripe unreachable or busy: {exc.user_message or type(exc).__name__}")
    if status is None or status >= 500 or status == 429 or exc.code in _TRANSIENT_CODES:
        return ProviderUnavailable(f"Stripe answered {status or 'nothing usable'} ({exc.code or 'no code'})")
    error = exc.error
    message = (error.message if error is not None else None) or exc.user_message or type(exc).__name__
    return ProviderRejected(exc.code or (error.type if error is not None else None) or "rejected", message, status)


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        api_key: str,
        webhook_secret: str,
        *,
        api_url: str = "https://api.stripe.com",
        tolerance: int = 300,
        timeout: float = 20,
    ) -> None:
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_url.rstrip("/")},
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout),
        )
        self._webhook_secret = webhook_secret
        self._tolerance = tolerance

    def _call(self, method: Any, params: Any, idempotency_key: str) -> Any:
        try:
            return method(params=params, options={"idempotency_key": idempotency_key})
        except stripe.StripeError as exc:
            raise _classified(exc) from None

    def create_deposit(
        self, *, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str], description: str
    ) -> ProviderIntent:
        intent = self._call(
            self.client.v1.payment_intents.create,
            {
                "amount": amount,
                "currency": currency,
                "automatic_payment_methods": {"enabled": True},
                "metadata": metadata,
                "description": description,
            },
            idempotency_key,
        )
        return ProviderIntent(
            id=intent.id,
            client_secret=intent.client_secret or "",
            status=intent.status,
            amount=intent.amount,
            currency=intent.currency,
        )

    def refund(
        self, *, payment_ref: str, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str]
    ) -> ProviderResult:
        # A refund's currency is its PaymentIntent's; Stripe takes none. The answer says which it was.
        refund = self._call(
            self.client.v1.refunds.create,
            {"payment_intent": payment_ref, "amount": amount, "metadata": metadata},
            idempotency_key,
        )
        status = refund.status or "pending"
        return ProviderResult(id=refund.id, status=status, amount=refund.amount, currency=refund.currency)

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
        transfer = self._call(
            self.client.v1.transfers.create,
            {
                "amount": amount,
                "currency": currency,
                "destination": destination,
                "transfer_group": transfer_group,
                "metadata": metadata,
            },
            idempotency_key,
        )
        # A Transfer has no status: it is paid once created, until it is reversed.
        status = "reversed" if transfer.reversed else "paid"
        return ProviderResult(id=transfer.id, status=status, amount=transfer.amount, currency=transfer.currency)

    def parse_webhook(self, body: bytes, signature: str | None, *, now: float) -> ProviderEvent:
        return verify_event(body, signature, secret=self._webhook_secret, tolerance=self._tolerance, now=now)


__all__ = ["StripeProvider"]
