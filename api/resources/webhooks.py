"""Provider webhooks: SendGrid's event webhook and Twilio's status callback, signatures verified.

Nothing in a request is acted on until its signature verifies: an unsigned
request is a 401, a forged, replayed or foreign-key one a 403, and a webhook
whose key is not configured refuses everything (403). Each event is stored once
and moves its deliveries forward only (``models/delivery_events.py``); a
provider that sends the same batch again changes nothing.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import falcon
import msgspec

from api.errors import Problem
from api.operation import client_ip, operation, read_body
from models.db import db
from models.delivery_events import apply_sendgrid_event, apply_twilio_status
from services.webhook_signatures import (
    SENDGRID_SIGNATURE,
    SENDGRID_TIMESTAMP,
    TWILIO_SIGNATURE,
    TWILIO_SIGNATURE_SETTINGS,
    SignatureMissing,
    SignatureRejected,
    verify_sendgrid,
    verify_twilio,
)

log = logging.getLogger("hearth.webhooks")
TAGS = ("webhooks",)
MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 1000
MAX_FORM_FIELDS = 100


def _verified(req, provider: str, check) -> None:
    """Run the signature ``check``; refusals become 401/403 problems (and a log line, never the secret)."""
    try:
        check()
    except SignatureMissing:
        raise Problem(falcon.HTTP_401, "Unauthorized", "The request is not signed.", slug="unsigned-webhook") from None
    except SignatureRejected as exc:
        log.warning(
            "webhook signature refused",
            extra={"provider": provider, "reason": str(exc), "ip": client_ip(req, req.context.services)},
        )
        raise Problem(
            falcon.HTTP_403, "Forbidden", "The request's signature does not verify.", slug="bad-signature"
        ) from None


def _bad_request(detail: str) -> Problem:
    return Problem(falcon.HTTP_400, "Bad request", detail, slug="bad-request")


class SendGridEvents:
    @operation(
        "SendGrid's signed event webhook",
        status=204,
        auth="none",
        rate=None,
        errors=(400, 401, 403, 413),
        tags=TAGS,
        description="A JSON array of at most 1,000 events, signed by SendGrid (ECDSA P-256 over the "
        "timestamp and the body; `X-Twilio-Email-Event-Webhook-Signature` and `-Timestamp`, "
        "at most 10 minutes old). Delivered, bounced and dropped messages update their "
        "deliveries; bounces, spam reports and unsubscribes stop email to the address.",
    )
    def on_post(self, req, resp):
        services = req.context.services
        body = read_body(req, MAX_BODY_BYTES)
        _verified(
            req,
            "sendgrid",
            lambda: verify_sendgrid(
                services.settings.sendgrid_webhook_public_key,
                req.get_header(SENDGRID_SIGNATURE),
                req.get_header(SENDGRID_TIMESTAMP),
                body,
                now=services.clock(),
            ),
        )
        try:
            events = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise _bad_request("The body is not valid JSON.") from None
        if not isinstance(events, list):
            raise _bad_request("The body must be a JSON array of events.")
        if len(events) > MAX_EVENTS:
            raise _bad_request(f"At most {MAX_EVENTS} events per request.")
        applied = 0
        with db.atomic():
            for event in events:
                if isinstance(event, dict):
                    applied += apply_sendgrid_event(event)
        log.info("sendgrid events", extra={"received": len(events), "applied": applied})
        resp.status = falcon.HTTP_204


class TwilioStatus:
    @operation(
        "Twilio's message status callback",
        status=204,
        auth="none",
        rate=None,
        errors=(400, 401, 403, 413),
        tags=TAGS,
        description="Form-encoded `MessageSid`, `MessageStatus`, `ErrorCode`, signed by Twilio "
        "(`X-Twilio-Signature` over the URL it called and the form). The query parameter "
        "`d` names the delivery. `delivered` and `undelivered`/`failed` settle it.",
    )
    def on_post(self, req, resp):
        settings = req.context.services.settings
        body = read_body(req, MAX_BODY_BYTES)
        media_type = (req.content_type or "").split(";")[0].strip().lower()
        params: dict[str, list[str]] = {}
        if media_type == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(
                    body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
                )
            except ValueError:
                raise _bad_request(f"At most {MAX_FORM_FIELDS} form fields.") from None
            for name, value in pairs:
                params.setdefault(name, []).append(value)
        # The URL Twilio called, as it signed it: our public base URL, the path and the raw query.
        url = settings.public_url.rstrip("/") + req.path + (f"?{req.query_string}" if req.query_string else "")
        _verified(
            req,
            "twilio",
            lambda: verify_twilio(
                settings.twilio_auth_token,
                url,
                params,
                req.get_header(TWILIO_SIGNATURE),
                req.get_header(TWILIO_SIGNATURE_SETTINGS),
            ),
        )
        fields = {name: values[-1] for name, values in params.items()}
        if not fields.get("MessageSid") or not fields.get("MessageStatus"):
            raise _bad_request("A status callback carries MessageSid and MessageStatus.")
        delivery = req.get_param("d") or ""
        delivery_id = int(delivery) if delivery.isascii() and delivery.isdigit() and len(delivery) <= 18 else None
        with db.atomic():
            apply_twilio_status(fields, delivery_id)
        resp.status = falcon.HTTP_204
