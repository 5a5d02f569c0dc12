"""What Supabase's API gateway does in front of GoTrue, for Hearth's ``/auth/v1``.

Every request there must carry the project's anon key in the ``apikey`` header
(or query parameter); a missing or wrong key is answered as the gateway answers
it. Errors on these paths are written in GoTrue's format, and a client that
names an API version gets it back in ``X-Supabase-Api-Version``.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlparse

import falcon

from api import supabase_shapes
from api.errors import Problem

PREFIX = "/auth/v1"
# Opened from an email by a browser, which has no key to send (Supabase's gateway lets them through too).
_OPEN = {("GET", f"{PREFIX}/verify")}


def _gateway_error(message: str, hint: str) -> Problem:
    problem = Problem(falcon.HTTP_401, "Unauthorized", message, hint=hint)
    problem.gateway = True  # type: ignore[attr-defined]
    return problem


class SupabaseGateway:
    """Middleware: the ``apikey`` check, GoTrue-shaped errors and the version header on ``/auth/v1``."""

    def __init__(self, anon_key: str):
        self.anon_key = anon_key.encode()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path != PREFIX and not req.path.startswith(PREFIX + "/"):
            return
        req.context.error_serializer = supabase_shapes.serialize_error
        if req.method == "OPTIONS" or (req.method, req.path) in _OPEN:
            return
        key = req.get_header("apikey") or req.get_param("apikey")
        if not key:
            raise _gateway_error("No API key found in request", "No `apikey` request header or url param was found.")
        if not hmac.compare_digest(key.encode(), self.anon_key):
            raise _gateway_error("Invalid API key", "Double check your Supabase `anon` or `service_role` API key.")

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource, req_succeeded: bool) -> None:
        ours = getattr(req.context, "error_serializer", None) is supabase_shapes.serialize_error
        if ours and supabase_shapes.requested_version(req):
            resp.set_header(supabase_shapes.API_VERSION_HEADER, supabase_shapes.API_VERSION)


def allowed_redirect(settings, url: str | None) -> str:
    """``url`` when it may receive a session (an allowed origin or URL prefix), else the site's own pages.

    Allowed: FRONTEND_URL (or PUBLIC_URL) and what lies under it, the CORS origins,
    and the prefixes in SUPABASE_REDIRECT_URLS. Anything else falls back to the
    site URL, as GoTrue falls back to its SITE_URL: tokens never go to a stranger.
    """
    site = settings.pages_url + "/"
    if not url:
        return site
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.username or parsed.password:
        return site
    origin = f"{parsed.scheme}://{parsed.netloc}"
    prefixes = (settings.pages_url, *settings.supabase_redirect_urls)
    if origin in settings.cors_origins or any(_under(url, prefix) for prefix in prefixes):
        return url
    return site


def _under(url: str, prefix: str) -> bool:
    prefix = prefix.rstrip("/")
    return url == prefix or url.startswith((prefix + "/", prefix + "?", prefix + "#"))
