"""``/v1/conversations``: a buyer and a listing's people talking about the listing."""
from __future__ import annotations

import falcon


class Conversations:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_post(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_get_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_get_messages(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_post_messages(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_post_read(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()
