"""``hearth payments sandbox-event``: finish a sandbox deposit by sending its webhook to the running API.

The event is built and signed by the sandbox provider (``SandboxProvider.sandbox_event``)
on the Redis of the running ``hearth run`` (where the API keeps the sandbox's
deposits) and POSTed over HTTP to ``/v1/webhooks/stripe``, the path Stripe
itself calls: it is verified, stored and acted on exactly as a real one.
"""

from __future__ import annotations

import redis as redis_lib

from services.payments import STRIPE_SIGNATURE, ProviderRejected, SandboxProvider
from settings import Settings

WEBHOOK_PATH = "/v1/webhooks/stripe"


class SandboxEventError(Exception):
    """An expected failure, shown to the user as is."""


def api_url(settings: Settings, given: str | None) -> str:
    """``--api``, or the address the running stack's web process listens on (``WEB_BIND``)."""
    if given:
        return given.rstrip("/")
    if settings.web_bind.startswith("unix:"):
        raise SandboxEventError("WEB_BIND is a unix socket; pass --api http://host:port")
    return f"http://{settings.web_bind}"


def send_sandbox_event(settings: Settings, redis_url: str, intent_id: str, outcome: str, api: str) -> tuple[int, str]:
    """Build, sign and deliver the event; the API's status and body."""
    import httpx

    if settings.payments_provider != "sandbox":
        raise SandboxEventError("PAYMENTS_PROVIDER is not sandbox: real events come from Stripe")
    client = redis_lib.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    try:
        provider = SandboxProvider(
            client,
            settings.redis_prefix,
            webhook_secret=settings.stripe_webhook_secret,
            secret_key=settings.secret_key,
            tolerance=settings.stripe_webhook_tolerance,
        )
        try:
            body, signature = provider.sandbox_event(intent_id, outcome)
        except ProviderRejected as exc:
            raise SandboxEventError(f"{intent_id}: {exc.message}") from None
        except redis_lib.RedisError as exc:
            raise SandboxEventError(f"cannot reach Redis: {exc}") from None
    finally:
        client.close()
    try:
        resp = httpx.post(
            api + WEBHOOK_PATH,
            content=body,
            headers={"Content-Type": "application/json", STRIPE_SIGNATURE: signature},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        raise SandboxEventError(f"cannot reach the API at {api}: {exc}") from None
    return resp.status_code, resp.text


__all__ = ["WEBHOOK_PATH", "SandboxEventError", "api_url", "send_sandbox_event"]
