"""Payments: the provider interface (``provider``), Stripe (``stripe_backend``), the sandbox (``sandbox``).

``build_payments(settings, redis)`` picks the backend ``PAYMENTS_PROVIDER`` names.
See docs/payments.md.
"""

from __future__ import annotations

import redis as redis_lib

from services.log_redaction import redact_library_logs
from services.payments.provider import (
    STRIPE_SIGNATURE,
    MalformedEvent,
    PaymentProvider,
    ProviderEvent,
    ProviderIntent,
    ProviderRejected,
    ProviderResult,
    ProviderUnavailable,
    SignatureMissing,
    SignatureRejected,
)
from services.payments.sandbox import SandboxProvider
from services.payments.stripe_backend import StripeProvider
from services.payments.webhook import sign_event
from settings import Settings


def build_payments(settings: Settings, redis: redis_lib.Redis) -> PaymentProvider:
    """``StripeProvider`` when ``PAYMENTS_PROVIDER=stripe``, else the ``SandboxProvider`` on ``redis``."""
    # Whoever builds a provider (the API, a worker, the CLI) keeps its secrets out of library logs.
    redact_library_logs()
    if settings.payments_provider == "stripe":
        return StripeProvider(
            settings.stripe_api_key,
            settings.stripe_webhook_secret,
            api_url=settings.stripe_api_url,
            tolerance=settings.stripe_webhook_tolerance,
        )
    return SandboxProvider(
        redis,
        settings.redis_prefix,
        webhook_secret=settings.stripe_webhook_secret,
        secret_key=settings.secret_key,
        tolerance=settings.stripe_webhook_tolerance,
    )


__all__ = [
    "STRIPE_SIGNATURE",
    "MalformedEvent",
    "PaymentProvider",
    "ProviderEvent",
    "ProviderIntent",
    "ProviderRejected",
    "ProviderResult",
    "ProviderUnavailable",
    "SandboxProvider",
    "SignatureMissing",
    "SignatureRejected",
    "StripeProvider",
    "build_payments",
    "sign_event",
]
