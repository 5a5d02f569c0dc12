"""``/v1/me/saved-searches``: named ``GET /v1/properties`` queries with alerts."""
from __future__ import annotations

import falcon


class MySavedSearches:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_post(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_get_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_patch_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_delete_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()
