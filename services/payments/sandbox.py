"""``SandboxProvider``: Stripe's behaviour without Stripe, for development (``hearth run``) and tests.

No network: state lives in Redis under ``<REDIS_PREFIX>payments:sandbox:``.

* **Idempotent like Stripe.** Each call is stored under its operation and
  idempotency key: the same key with the same parameters returns the same
  object and creates nothing; with other parameters it is refused
  (``ProviderRejected("idempotency_error", ..., 400)``). Ids derive from the
  key (``pi_sandbox_<hash>``, ``re_sandbox_<hash>``, ``tr_sandbox_<hash>``), the
  client secret is ``<id>_secret_<hmac>``.
* **Deposits** start ``requires_payment_method``; ``sandbox_event(intent_id,
  outcome)`` completes one (``succeeded``, ``failed``, ``canceled``) and returns
  the webhook Stripe would send, signed with ``STRIPE_WEBHOOK_SECRET``, for
  ``POST /v1/webhooks/stripe``. The same outcome again is the same event (same id).
* **Refunds** of a succeeded deposit (up to what is left of it) and **payouts**
  succeed at once. ``program(operation, *outcomes)`` scripts the next calls of
  an operation: ``"unavailable"`` raises ``ProviderUnavailable``, ``"declined"``
  ``ProviderRejected("sandbox_declined", ..., 402)``, ``"ok"`` answers normally.
  A scripted failure stands for one before the provider ran the request: it
  stores nothing under the key, so a retry with the key then succeeds.
* ``operations()``: every object the sandbox created, oldest first.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import redis as redis_lib

from services.payments.provider import (
    ProviderEvent,
    ProviderIntent,
    ProviderRejected,
    ProviderResult,
    ProviderUnavailable,
)
from services.payments.webhook import sign_event, verify_event

OPERATIONS = ("create_deposit", "refund", "payout")
OUTCOMES = ("succeeded", "failed", "canceled")
SCRIPTED = ("ok", "unavailable", "declined")
# What a PaymentIntent's status becomes, and the event type Stripe sends, for each outcome.
_OUTCOME = {
    "succeeded": ("succeeded", "payment_intent.succeeded"),
    "failed": ("requires_payment_method", "payment_intent.payment_failed"),
    "canceled": ("canceled", "payment_intent.canceled"),
}
_OPEN = ("requires_payment_method", "requires_confirmation", "requires_action", "processing")
# Sandbox state is development data: it goes away after a month without use.
TTL_SECONDS = 30 * 24 * 3600


class SandboxProvider:
    name = "sandbox"

    def __init__(
        self,
        redis: redis_lib.Redis,
        prefix: str,
        *,
        webhook_secret: str,
        secret_key: str,
        tolerance: int = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self._prefix = f"{prefix}payments:sandbox:"
        self._webhook_secret = webhook_secret
        self._secret_key = secret_key.encode()
        self._tolerance = tolerance
        self._clock = clock

    # --- test and operator controls ---------------------------------------------------------

    def program(self, operation: str, *outcomes: str) -> None:
        """Script the next calls of ``operation`` (``create_deposit``, ``refund``, ``payout``), in order."""
        if operation not in OPERATIONS or any(outcome not in SCRIPTED for outcome in outcomes):
            raise ValueError(f"operation is one of {OPERATIONS}, outcomes of {SCRIPTED}")
        if outcomes:
            key = self._prefix + f"script:{operation}"
            self.redis.rpush(key, *outcomes)
            self.redis.expire(key, TTL_SECONDS)

    def operations(self) -> list[dict[str, Any]]:
        """Every object the sandbox created (``{"operation", "idempotency_key", "object"}``), oldest first."""
        return [json.loads(raw) for raw in self.redis.lrange(self._prefix + "operations", 0, -1)]

    def payment_intent(self, intent_id: str) -> dict[str, Any] | None:
        """The sandbox's PaymentIntent ``intent_id`` as Stripe would show it, or None."""
        raw = self.redis.get(self._prefix + f"object:{intent_id}")
        return json.loads(raw) if raw else None

    # --- PaymentProvider ------------------------------------------------------------------

    def create_deposit(
        self, *, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str], description: str
    ) -> ProviderIntent:
        params = {"amount": amount, "currency": currency, "metadata": metadata, "description": description}

        def make(object_id: str) -> dict[str, Any]:
            secret = hmac.new(self._secret_key, object_id.encode(), hashlib.sha256).hexdigest()[:24]
            return {
                "id": object_id,
                "object": "payment_intent",
                "amount": amount,
                "currency": currency,
                "status": "requires_payment_method",
                "client_secret": f"{object_id}_secret_{secret}",
                "description": description,
                "metadata": dict(metadata),
                "amount_refunded": 0,
                "created": int(self._clock()),
            }

        intent = self._once("create_deposit", "pi", idempotency_key, params, make)
        return ProviderIntent(intent["id"], intent["client_secret"], intent["status"], amount, currency)

    def refund(
        self, *, payment_ref: str, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str]
    ) -> ProviderResult:
        params = {"payment_intent": payment_ref, "amount": amount, "currency": currency, "metadata": metadata}

        def make(object_id: str) -> dict[str, Any]:
            intent = self.payment_intent(payment_ref)
            if intent is None:
                raise ProviderRejected("resource_missing", f"No such payment_intent: '{payment_ref}'", 404)
            if intent["status"] != "succeeded":
                raise ProviderRejected(
                    "payment_intent_unexpected_state", f"The PaymentIntent is {intent['status']}, not succeeded", 400
                )
            if currency != intent["currency"] or amount > intent["amount"] - intent["amount_refunded"]:
                raise ProviderRejected("amount_too_large", "The refund is more than is left of the payment", 400)
            intent["amount_refunded"] += amount
            self._store(intent)
            return {
                "id": object_id,
                "object": "refund",
                "amount": amount,
                "currency": currency,
                "payment_intent": payment_ref,
                "status": "succeeded",
                "metadata": dict(metadata),
            }

        refund = self._once("refund", "re", idempotency_key, params, make, pure=False)
        return ProviderResult(refund["id"], refund["status"], amount, currency)

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
        params = {
            "destination": destination,
            "amount": amount,
            "currency": currency,
            "metadata": metadata,
            "transfer_group": transfer_group,
        }

        def make(object_id: str) -> dict[str, Any]:
            return {"id": object_id, "object": "transfer", "reversed": False, **params}

        transfer = self._once("payout", "tr", idempotency_key, params, make)
        return ProviderResult(transfer["id"], "paid", amount, currency)

    def parse_webhook(self, body: bytes, signature: str | None, *, now: float) -> ProviderEvent:
        return verify_event(body, signature, secret=self._webhook_secret, tolerance=self._tolerance, now=now)

    # --- webhooks the sandbox sends ---------------------------------------------------------

    def sandbox_event(self, intent_id: str, outcome: str, *, now: float | None = None) -> tuple[bytes, str]:
        """Complete the deposit ``intent_id`` with ``outcome``; the webhook body and its ``Stripe-Signature``.

        Raises ``ProviderRejected``: 404 ``resource_missing`` for an unknown
        intent, 400 ``payment_intent_unexpected_state`` when it is already settled
        otherwise. The same outcome again returns the same event, signed anew.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome is one of {OUTCOMES}")
        now = self._clock() if now is None else now
        event_id = "evt_sandbox_" + hashlib.sha256(f"{intent_id}:{outcome}".encode()).hexdigest()[:24]
        event_key = self._prefix + f"object:{event_id}"
        stored = self.redis.get(event_key)
        if stored is not None:
            body = stored.encode() if isinstance(stored, str) else stored
        else:
            intent = self.payment_intent(intent_id)
            if intent is None or intent.get("object") != "payment_intent":
                raise ProviderRejected("resource_missing", f"No such payment_intent: '{intent_id}'", 404)
            status, event_type = _OUTCOME[outcome]
            if intent["status"] not in _OPEN:
                raise ProviderRejected(
                    "payment_intent_unexpected_state", f"The PaymentIntent is already {intent['status']}", 400
                )
            intent["status"] = status
            if outcome == "failed":
                intent["last_payment_error"] = {"code": "card_declined", "message": "Your card was declined."}
            self._store(intent)
            event = {
                "id": event_id,
                "object": "event",
                "api_version": "2026-10-28.endive",
                "type": event_type,
                "created": int(now),
                "livemode": False,
                "pending_webhooks": 1,
                "data": {"object": intent},
            }
            body = json.dumps(event, separators=(",", ":")).encode()
            self.redis.set(event_key, body, ex=TTL_SECONDS)
        return body, sign_event(body, self._webhook_secret, int(now))

    # --- storage ------------------------------------------------------------------------------

    def _store(self, obj: dict[str, Any]) -> None:
        self.redis.set(self._prefix + f"object:{obj['id']}", json.dumps(obj), ex=TTL_SECONDS)

    def _scripted(self, operation: str) -> None:
        outcome = self.redis.lpop(self._prefix + f"script:{operation}")
        if outcome == b"unavailable":
            raise ProviderUnavailable(f"the sandbox was told to be unavailable for {operation}")
        if outcome == b"declined":
            raise ProviderRejected("sandbox_declined", f"the sandbox was told to decline {operation}", 402)

    def _once(
        self,
        operation: str,
        id_prefix: str,
        idempotency_key: str,
        params: dict[str, Any],
        make: Callable[[str], dict[str, Any]],
        *,
        pure: bool = True,
    ) -> dict[str, Any]:
        """The object ``idempotency_key`` made for ``operation``, made by ``make(id)`` on its first use.

        ``pure``: ``make`` only builds the object (no check, nothing stored), so it may run before the
        key is claimed; a ``make`` that checks or changes other objects (a refund) runs under the key's lock.
        """
        self._scripted(operation)
        digest = hashlib.sha256(f"{operation}:{idempotency_key}".encode()).hexdigest()
        fingerprint = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        key = self._prefix + f"key:{digest}"
        object_id = f"{id_prefix}_sandbox_{digest[:24]}"
        if pure:
            # Claimed with SET NX: of concurrent callers of one key exactly one makes the object.
            obj = make(object_id)
            if self.redis.set(key, self._record(fingerprint, obj), ex=TTL_SECONDS, nx=True):
                return self._made(operation, idempotency_key, obj, None)
            return self._repeat(key, fingerprint)
        # Callers of one key take turns, so a concurrent repeat finds the object the first one made.
        with self.redis.lock(key + ":lock", timeout=10, blocking_timeout=10):
            if self.redis.exists(key):
                return self._repeat(key, fingerprint)
            return self._made(operation, idempotency_key, make(object_id), (key, fingerprint))

    @staticmethod
    def _record(fingerprint: str, obj: dict[str, Any]) -> str:
        return json.dumps({"fingerprint": fingerprint, "id": obj["id"], "object": obj})

    def _made(
        self, operation: str, idempotency_key: str, obj: dict[str, Any], claim: tuple[str, str] | None
    ) -> dict[str, Any]:
        """Store a new object (and its key's record when ``claim`` is ``(key, fingerprint)``) in one round trip."""
        entry = {"operation": operation, "idempotency_key": idempotency_key, "object": obj}
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self._prefix + f"object:{obj['id']}", json.dumps(obj), ex=TTL_SECONDS)
        if claim is not None:
            pipe.set(claim[0], self._record(claim[1], obj), ex=TTL_SECONDS)
        pipe.rpush(self._prefix + "operations", json.dumps(entry))
        pipe.expire(self._prefix + "operations", TTL_SECONDS)
        pipe.execute()
        return obj

    def _repeat(self, key: str, fingerprint: str) -> dict[str, Any]:
        """A repeated key: the object it made (as it is now: a deposit's status moves on), or a refusal."""
        stored = self.redis.get(key)
        if stored is None:  # expired between the claim and this read: a month-old key
            raise ProviderRejected("idempotency_error", "The idempotency key expired.", 400)
        record = json.loads(stored)
        if record["fingerprint"] != fingerprint:
            raise ProviderRejected(
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                400,
            )
        found = self.redis.get(self._prefix + f"object:{record['id']}")
        obj: dict[str, Any] = json.loads(found) if found else record["object"]
        return obj


__all__ = ["OPERATIONS", "OUTCOMES", "SCRIPTED", "SandboxProvider"]
