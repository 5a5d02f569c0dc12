"""Blocks (``/v1/me/blocks``) and reports (``/v1/reports``, ``/v1/admin/reports``)."""
from __future__ import annotations

import falcon


class MyBlocks:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_put_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_delete_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()


class Reports:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_post(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()


class AdminReports:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_get_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_patch_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()
