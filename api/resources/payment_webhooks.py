"""The payments provider's webhook (``POST /v1/webhooks/stripe``) and the sandbox's delivery of it.

Nothing in a request is acted on until its ``Stripe-Signature`` verifies
(``PaymentProvider.parse_webhook``): unsigned → 401, forged or outside the
tolerance (a replay) → 403, and nothing is stored. A verified event is stored
once under its own id (``models/payment_events.py``); a new one of a handled
type creates a ``payments.apply_event`` job in the same transaction, submitted
after the commit. Repeats answer ``duplicate: true`` and change nothing.

``POST /v1/admin/payments/sandbox/events`` (sandbox provider only) completes a
sandbox deposit: it builds the signed event the provider would send and runs
it through ``receive_event``, the same function the webhook uses.
"""

from __future__ import annotations

import logging

import falcon

from api.errors import Problem, conflict, not_found
from api.operation import client_ip, operation, read_body
from api.schemas.payments import SandboxEventRequest, WebhookReceipt
from models.payment_events import record_payment_event
from services.payments import (
    STRIPE_SIGNATURE,
    MalformedEvent,
    ProviderRejected,
    SandboxProvider,
    SignatureMissing,
    SignatureRejected,
)

log = logging.getLogger("hearth.webhooks")
# Stripe's events are well under this (its documented maximum is 64 KiB once serialised).
MAX_EVENT_BYTES = 64 * 1024


def receive_event(req, body: bytes, signature: str | None) -> dict:
    """Verify ``body`` with the provider, store its event once (and its job); the webhook's answer."""
    services = req.context.services
    try:
        event = services.payments.parse_webhook(body, signature, now=services.clock())
    except SignatureMissing:
        raise Problem(falcon.HTTP_401, "Unauthorized", "The request is not signed.", slug="unsigned-webhook") from None
    except SignatureRejected as exc:
        log.warning(
            "webhook signature refused",
            extra={"provider": services.payments.name, "reason": str(exc), "ip": client_ip(req, services)},
        )
        raise Problem(
            falcon.HTTP_403, "Forbidden", "The request's signature does not verify.", slug="bad-signature"
        ) from None
    except MalformedEvent as exc:
        raise Problem(falcon.HTTP_400, "Bad request", f"Not a payment event: {exc}.", slug="bad-request") from None
    received = record_payment_event(
        event_id=event.id,
        event_type=event.type,
        object_type=event.object_type,
        object_id=event.object_id,
        created=event.created,
        payload=event.payload,
    )
    log.info(
        "payment event",
        extra={"event_id": event.id, "type": event.type, "duplicate": received.duplicate, "job": bool(received.job)},
    )
    return {"received": True, "duplicate": received.duplicate}


class StripeEvents:
    @operation(
        "The payments provider's signed event webhook",
        response=WebhookReceipt,
        auth="none",
        rate=None,
        raw_body="application/json",
        errors=(400, 401, 403, 413, 415),
        tags=("webhooks",),
        description="A Stripe event (JSON, at most 64 KiB), signed by Stripe (`Stripe-Signature: "
        't=<timestamp>,v1=<HMAC-SHA256 of "<timestamp>.<body>">` with STRIPE_WEBHOOK_SECRET; the timestamp '
        "at most STRIPE_WEBHOOK_TOLERANCE seconds, 300 by default, from now). Unsigned: 401; forged or "
        "replayed: 403; nothing is stored either way. A verified event is stored once under its id; a new "
        "one of type `payment_intent.succeeded`, `.payment_failed`, `.canceled`, `.processing`, "
        "`refund.updated`, `refund.failed` or `transfer.reversed` queues a `payments.apply_event` job on the "
        "`money` queue. Other types are stored and acknowledged. `duplicate` is true when the event was "
        "delivered before: nothing changed.",
    )
    def on_post(self, req, resp):
        media_type = (req.content_type or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise Problem(falcon.HTTP_415, "Unsupported media type", "Stripe events are application/json.")
        body = read_body(req, MAX_EVENT_BYTES)
        resp.media = receive_event(req, body, req.get_header(STRIPE_SIGNATURE))


class SandboxEvents:
    @operation(
        "Complete a sandbox deposit with a signed provider event",
        body=SandboxEventRequest,
        response=WebhookReceipt,
        permission="admin:payments",
        errors=(404, 409, 422),
        tags=("admin",),
        description="Only with PAYMENTS_PROVIDER=sandbox (404 otherwise). Builds the event the provider "
        "would send when the deposit `payment_intent` ends with `outcome` (`payment_intent.succeeded`, "
        "`.payment_failed` or `.canceled`), signed with STRIPE_WEBHOOK_SECRET, and receives it exactly as "
        "`POST /v1/webhooks/stripe` does: the answer is the webhook's. The same outcome again is the same "
        "event (`duplicate: true`). 404: no such sandbox deposit; 409: the deposit already ended otherwise.",
    )
    def on_post(self, req, resp):
        payments = req.context.services.payments
        if not isinstance(payments, SandboxProvider):
            raise not_found("sandbox payments provider (PAYMENTS_PROVIDER is not sandbox)")
        request: SandboxEventRequest = req.context.body
        try:
            body, signature = payments.sandbox_event(
                request.payment_intent, request.outcome, now=req.context.services.clock()
            )
        except ProviderRejected as exc:
            if exc.status == 404:
                raise not_found("sandbox payment intent") from None
            raise conflict(exc.message, slug="payment-intent-state") from None
        resp.media = receive_event(req, body, signature)


__all__ = ["MAX_EVENT_BYTES", "SandboxEvents", "StripeEvents", "receive_event"]
