"""Schemas of the payments provider's webhook and the sandbox's delivery of it."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.schemas import Request, Response

PaymentIntentId = Annotated[
    str,
    msgspec.Meta(
        min_length=4,
        max_length=255,
        pattern=r"^pi_[A-Za-z0-9_]+$",
        description="A PaymentIntent id, as `create_deposit` returned it",
        examples=["pi_sandbox_3f2a9c0d1b7e4a5f6c8d9e0a"],
    ),
]


class WebhookReceipt(Response):
    """The event was verified and is stored; ``duplicate``: it had been delivered before (nothing changed)."""

    received: bool
    duplicate: bool


class SandboxEventRequest(Request):
    payment_intent: PaymentIntentId
    outcome: Literal["succeeded", "failed", "canceled"]
