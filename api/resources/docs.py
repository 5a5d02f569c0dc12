"""``/v1/openapi.json`` (the API described by its own routes) and ``/docs`` (a reference page that reads it)."""

from __future__ import annotations

import base64
import hashlib
import pathlib
import re

import falcon
import msgspec

from api import openapi
from api.operation import operation

TAGS = ("docs",)
PAGE = pathlib.Path(__file__).resolve().parent.parent / "static" / "docs.html"
CACHE = ["public", "max-age=60"]
_INLINE = re.compile(rb"<(script|style)(?:\s[^>]*)?>(.*?)</\1\s*>", re.S)


class OpenApi:
    """Builds the document on the first request, when every route of ``app`` is in place."""

    def __init__(self, app: falcon.App):
        self.app = app
        self._body: bytes | None = None

    @operation(
        "This API as an OpenAPI 3.1 document",
        auth="none",
        rate=None,
        tags=TAGS,
        description="Generated from the routes and schemas the server runs, so it cannot drift.",
    )
    def on_get(self, req, resp):
        if self._body is None:  # two threads may both build it; the result is the same
            self._body = msgspec.json.encode(openapi.document(self.app))
        resp.data = self._body
        resp.content_type = falcon.MEDIA_JSON
        resp.cache_control = CACHE


class Docs:
    """A self-contained page: inline CSS and script, no third-party hosts, allowed by hash in its CSP."""

    def __init__(self, page: bytes | None = None):
        self.page = PAGE.read_bytes() if page is None else page
        self.csp = content_security_policy(self.page)

    @operation(
        "API reference (HTML)",
        auth="none",
        rate=None,
        tags=TAGS,
        content_type="text/html",
        description="Renders `/v1/openapi.json` in the browser; works without internet access.",
    )
    def on_get(self, req, resp):
        resp.data = self.page
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = CACHE
        resp.set_header("Content-Security-Policy", self.csp)


def content_security_policy(page: bytes) -> str:
    """A policy that allows exactly the page's inline ``<script>`` and ``<style>`` blocks.

    Hashes rather than nonces: the page is static, so it can be cached.
    """
    allowed: dict[bytes, list[str]] = {b"script": [], b"style": []}
    for kind, body in _INLINE.findall(page):
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        allowed[kind].append(f"'sha256-{digest}'")
    return (
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ).format(" ".join(allowed[b"script"]) or "'none'", " ".join(allowed[b"style"]) or "'none'")
