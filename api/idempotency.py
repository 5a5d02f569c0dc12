"""Safe retries: the ``Idempotency-Key`` header of operations declared ``@operation(..., idempotent=True)``.

The semantics are Stripe's and those of the IETF draft "The Idempotency-Key
HTTP Header Field" (docs/api.md says what clients may rely on):

* A key belongs to the signed-in user and to the first request made with it
  (method, route, path, query string and body bytes). Its response (status,
  body, ``Location``, ``ETag``, ``Content-Type``) is kept ``IDEMPOTENCY_KEY_TTL``
  seconds; the same request again gets it back with ``Idempotent-Replayed: true``
  and nothing runs again. Another request with the key is a 422.
* While the first request runs, another with its key is a 409 and waits for nothing.
* Kept: what the responder answered, errors it raised on purpose (a 404, a 409
  illegal transition) included. Not kept: a body that does not validate (422),
  a 429, an unexpected error or a 5xx; the key stays free for the retry.

The responder, the lock on the key and the stored response share one
transaction: writes are never committed without their stored response, nor a
stored response without its writes. So an idempotent responder must leave
every effect outside the database to after the commit (jobs do that already:
``models.job_submission`` submits them once the outermost block commits, and
drops them when it rolls back).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Callable
from typing import Any

import falcon

from api.errors import Problem, serialize_problem, validation_error
from models.db import db
from models.idempotency import IdempotencyKey, find_live, store, take_turn

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# 1 to 255 printable ASCII characters; HTTP itself drops spaces around a header value.
KEY_PATTERN = "^[ -~]{1,255}$"
_KEY = re.compile(KEY_PATTERN)
# The response headers a replay repeats; the others (request id, rate limit) belong to each request.
KEPT_HEADERS = ("Location", "ETag")
# A body that does not validate: the client may fix it and retry with the same key.
_UNKEPT_SLUGS = frozenset({"validation"})


class _Unkept(Exception):
    """The responder answered 5xx without raising: its writes are undone and nothing is kept."""


def requested_key(req: falcon.Request) -> str | None:
    """The request's ``Idempotency-Key``; None without one; 422 naming the header when it is malformed."""
    key = req.get_header(HEADER)
    if key is None:
        return None
    if not _KEY.match(key):
        raise validation_error(
            [{"field": f"header.{HEADER}", "message": "must be 1 to 255 printable ASCII characters"}],
            detail=f"The {HEADER} header is malformed.",
        )
    return key


def request_digest(req: falcon.Request, body: bytes) -> bytes:
    """SHA-256 over the path, the query string and the body bytes: what makes a retry the same request."""
    digest = hashlib.sha256()
    for part in (req.path.encode(), req.query_string.encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    digest.update(body)
    return digest.digest()


def respond_once(req: falcon.Request, resp: falcon.Response, key: str, body: bytes, respond: Callable[[], Any]) -> None:
    """Run ``respond()`` once per key (see the module docstring), or replay what the first run answered.

    ``body`` is the request's body bytes as read. Raises the 409 and 422
    problems of the key, and whatever ``respond()`` raises.
    """
    services = req.context.services
    user_id = req.context.principal.user_id
    route = req.uri_template or req.path
    digest = request_digest(req, body)
    now = datetime.datetime.fromtimestamp(services.clock(), datetime.UTC)
    raised: falcon.HTTPError | None = None
    with db.atomic():
        if not take_turn(user_id, key):
            raise in_flight()
        stored = find_live(user_id, key, now)
        if stored is not None:
            if stored.method != req.method or stored.route != route:
                raise key_mismatch(f"This {HEADER} was used for another endpoint ({stored.method} {stored.route}).")
            if bytes(stored.request_digest) != digest:
                raise key_mismatch(f"This {HEADER} was used for a request with another path, query or body.")
            replay(stored, resp)
            return
        try:
            with db.atomic():
                respond()
                if resp.status_code >= 500:
                    raise _Unkept
        except _Unkept:
            return
        except falcon.HTTPError as exc:
            if not kept(exc):
                raise
            raised = exc
            status, headers, answer = _problem_answer(req, exc)
        else:
            status, headers, answer = _answer(resp)
        store(
            user_id=user_id,
            key=key,
            method=req.method,
            route=route,
            request_digest=digest,
            status=status,
            headers=headers,
            body=answer,
            now=now,
            ttl_seconds=services.settings.idempotency_key_ttl,
        )
    if raised is not None:
        raise raised  # answered as it would have been; its replay is the same problem


def kept(exc: falcon.HTTPError) -> bool:
    """Whether a problem raised by the responder is stored for replay: a 4xx it meant, not a bad input."""
    return kept_status(exc.status_code) and getattr(exc, "slug", None) not in _UNKEPT_SLUGS


def kept_status(status: int) -> bool:
    """Whether an error status can be stored and replayed: a 4xx but 429 (a retry later may well pass)."""
    return 400 <= status < 500 and status != 429


def replay(stored: IdempotencyKey, resp: falcon.Response) -> None:
    """Answer with ``stored``'s status, body and kept headers, marked ``Idempotent-Replayed: true``."""
    resp.status = stored.response_status
    headers = dict(stored.response_headers)
    resp.content_type = headers.pop("Content-Type", resp.content_type)
    for name, value in headers.items():
        resp.set_header(name, value)
    resp.data = bytes(stored.response_body)
    resp.set_header(REPLAYED_HEADER, "true")


def _answer(resp: falcon.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {name: value for name in KEPT_HEADERS if (value := resp.get_header(name)) is not None}
    headers["Content-Type"] = resp.content_type or falcon.MEDIA_JSON
    return resp.status_code, headers, resp.render_body() or b""


def _problem_answer(req: falcon.Request, exc: falcon.HTTPError) -> tuple[int, dict[str, str], bytes]:
    # The same serializer the app answers with, so the replay is the answer the client missed.
    scratch = falcon.Response()
    serialize_problem(req, scratch, exc)
    return exc.status_code, {"Content-Type": scratch.content_type or "application/problem+json"}, scratch.data or b""


def in_flight() -> Problem:
    return Problem(
        falcon.HTTP_409,
        "Request in progress",
        f"A request with this {HEADER} is still in progress; retry once it has finished.",
        slug="idempotency-key-in-flight",
    )


def key_mismatch(detail: str) -> Problem:
    return Problem(
        falcon.HTTP_422,
        "Idempotency key reused",
        f"{detail} Use a new key for a new request.",
        slug="idempotency-key-mismatch",
    )


__all__ = [
    "HEADER",
    "KEY_PATTERN",
    "REPLAYED_HEADER",
    "kept",
    "kept_status",
    "replay",
    "request_digest",
    "requested_key",
    "respond_once",
]
