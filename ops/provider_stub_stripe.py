"""Stripe's part of the provider stub (``ops/provider_stub.py``): the endpoints the ``stripe`` library calls.

* ``POST /v1/payment_intents`` → a PaymentIntent (``pi_…``, ``requires_payment_method``, a client secret);
* ``GET /v1/payment_intents/{id}``;
* ``POST /v1/refunds`` (``payment_intent``, ``amount``: the whole payment when absent) → a Refund, ``succeeded``;
* ``POST /v1/transfers`` (``amount``, ``currency``, ``destination``, ``transfer_group``) → a Transfer;
* ``GET /v1/transfers?transfer_group=…`` → a list.

Bodies are form-encoded as Stripe takes them (``metadata[offer]=7``), answers
are Stripe-shaped JSON, errors Stripe's document ``{"error": {"type", "code",
"message"}}``. The namespace is the API key (``Authorization: Bearer sk_test_…``).

Idempotency as Stripe does it: a POST with an ``Idempotency-Key`` already used
with the same method, path and parameters gets the stored answer again (header
``Idempotent-Replayed: true``) and creates nothing; with other parameters, 400
``idempotency_error``. Scripted answers (``/_program``) stand for failures before
Stripe ran the request: they are not stored under the key.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any

_PAYMENT_INTENT = re.compile(r"^/v1/payment_intents/([A-Za-z0-9_]{1,255})$")
_ERROR_TYPES = {
    400: ("invalid_request_error", "parameter_invalid"),
    401: ("invalid_request_error", "api_key_invalid"),
    402: ("card_error", "card_declined"),
    404: ("invalid_request_error", "resource_missing"),
    409: ("invalid_request_error", "lock_timeout"),
    429: ("invalid_request_error", "rate_limit"),
}


def is_stripe_path(path: str) -> bool:
    return path.startswith("/v1/")


def stripe_error(status: int, code: str | None = None, message: str | None = None, kind: str | None = None) -> dict:
    default_kind, default_code = _ERROR_TYPES.get(status, ("api_error", None))
    error = {"type": kind or default_kind, "message": message or f"scripted error {status}"}
    if code or default_code:
        error["code"] = code or default_code
    return {"error": error}


def nested_form(pairs: list[tuple[str, str]]) -> dict:
    """Stripe's form encoding back to objects: ``metadata[a]=1`` → ``{"metadata": {"a": "1"}}``."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        parts = re.findall(r"[^\[\]]+", name)
        if not parts:
            continue
        target = result
        for part in parts[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[parts[-1]] = value
    return result


def _integer(params: dict, name: str) -> int | None:
    value = params.get(name)
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 15 else None


class StripeState:
    """Objects and idempotent answers per API key; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, dict]] = {}
        self._idempotent: dict[str, dict[str, tuple]] = {}

    def reset(self, ns: str) -> None:
        with self._lock:
            self._objects.pop(ns, None)
            self._idempotent.pop(ns, None)

    def answer(self, ns: str, method: str, path: str, params: dict, idempotency_key: str | None):
        """``(status, payload, headers)`` for one request that was not scripted."""
        with self._lock:
            if method == "POST" and idempotency_key:
                fingerprint = (method, path, repr(sorted(params.items())))
                stored = self._idempotent.setdefault(ns, {}).get(idempotency_key)
                if stored is not None:
                    if stored[0] != fingerprint:
                        return (
                            400,
                            stripe_error(
                                400,
                                message="Keys for idempotent requests can only be used with the same parameters "
                                "they were first used with.",
                                kind="idempotency_error",
                            ),
                            {},
                        )
                    return stored[1], stored[2], {"Idempotent-Replayed": "true", "Idempotency-Key": idempotency_key}
                status, payload = self._run(ns, method, path, params)
                self._idempotent[ns][idempotency_key] = (fingerprint, status, payload)
                return status, payload, {"Idempotency-Key": idempotency_key}
            status, payload = self._run(ns, method, path, params)
            return status, payload, {}

    def _run(self, ns: str, method: str, path: str, params: dict) -> tuple[int, dict]:
        objects = self._objects.setdefault(ns, {})
        found = _PAYMENT_INTENT.match(path)
        if method == "GET" and found:
            intent = objects.get(found.group(1))
            if intent is None:
                return 404, stripe_error(404, message=f"No such payment_intent: '{found.group(1)}'")
            return 200, intent
        if method == "GET" and path == "/v1/transfers":
            group = params.get("transfer_group")
            data = [
                obj
                for obj in objects.values()
                if obj["object"] == "transfer" and (group is None or obj.get("transfer_group") == group)
            ]
            return 200, {"object": "list", "data": data[::-1], "has_more": False, "url": "/v1/transfers"}
        if method != "POST":
            return 404, stripe_error(404, message=f"Unrecognized request URL ({method}: {path})")
        if path == "/v1/payment_intents":
            return self._payment_intent(objects, params)
        if path == "/v1/refunds":
            return self._refund(objects, params)
        if path == "/v1/transfers":
            return self._transfer(objects, params)
        return 404, stripe_error(404, message=f"Unrecognized request URL (POST: {path})")

    @staticmethod
    def _missing(params: dict, *names: str) -> tuple[int, dict] | None:
        for name in names:
            if not params.get(name):
                return 400, stripe_error(400, "parameter_missing", f"Missing required param: {name}.")
        for name in ("amount",):
            if name in params and not _integer(params, name):
                return 400, stripe_error(400, "parameter_invalid_integer", f"Invalid integer: {params[name]}")
        return None

    def _payment_intent(self, objects: dict, params: dict) -> tuple[int, dict]:
        refused = self._missing(params, "amount", "currency")
        if refused:
            return refused
        intent_id = "pi_" + uuid.uuid4().hex[:24]
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": _integer(params, "amount"),
            "amount_received": 0,
            "currency": params["currency"].lower(),
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex[:24]}",
            "description": params.get("description"),
            "metadata": params.get("metadata") or {},
            "automatic_payment_methods": {
                "enabled": params.get("automatic_payment_methods", {}).get("enabled") == "true",
                "allow_redirects": "always",
            },
            "capture_method": "automatic",
            "created": int(time.time()),
            "livemode": False,
        }
        objects[intent_id] = intent
        return 200, intent

    def _refund(self, objects: dict, params: dict) -> tuple[int, dict]:
        refused = self._missing(params, "payment_intent")
        if refused:
            return refused
        intent = objects.get(params["payment_intent"])
        if intent is None or intent["object"] != "payment_intent":
            return 404, stripe_error(404, message=f"No such payment_intent: '{params['payment_intent']}'")
        amount = _integer(params, "amount") if "amount" in params else intent["amount"]
        if not amount:
            return 400, stripe_error(400, "parameter_invalid_integer", "Invalid integer: amount")
        refund_id = "re_" + uuid.uuid4().hex[:24]
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "status": "succeeded",
            "metadata": params.get("metadata") or {},
            "created": int(time.time()),
        }
        objects[refund_id] = refund
        return 200, refund

    def _transfer(self, objects: dict, params: dict) -> tuple[int, dict]:
        refused = self._missing(params, "amount", "currency", "destination")
        if refused:
            return refused
        transfer_id = "tr_" + uuid.uuid4().hex[:24]
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": _integer(params, "amount"),
            "amount_reversed": 0,
            "currency": params["currency"].lower(),
            "destination": params["destination"],
            "transfer_group": params.get("transfer_group"),
            "metadata": params.get("metadata") or {},
            "reversed": False,
            "created": int(time.time()),
            "livemode": False,
        }
        objects[transfer_id] = transfer
        return 200, transfer


__all__ = ["StripeState", "is_stripe_path", "nested_form", "stripe_error"]
