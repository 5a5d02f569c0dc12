"""Provider webhooks: SendGrid's event webhook and Twilio's status callback, signatures verified."""
from __future__ import annotations

import falcon


class SendGridEvents:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_post(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()


class TwilioStatus:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_post(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()
