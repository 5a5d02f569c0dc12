"""In-app notifications, preferences, phone verification, unsubscribe links, and the operators' view of deliveries."""
from __future__ import annotations

import falcon


class MyNotifications:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_post_read_all(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_post_read(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()


class MyNotificationPreferences:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_patch(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()


class MyPhone:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_put(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_delete(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_post_verify(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()


class Unsubscribe:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_post(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()


class AdminDeliveries:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()


class AdminSuppressions:
    def __init__(self, secret: str | None = None):
        self.secret = secret

    def on_get(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()

    def on_delete_item(self, req, resp, **params):  # placeholder, replaced by the implementation
        raise falcon.HTTPNotImplemented()
