"""The web process's gunicorn worker: gunicorn's threaded worker, answering its own 414 as problem+json.

gunicorn refuses a request line over ``limit_request_line`` itself, before the API
sees the request, with an HTML page. Every other error of the API is
``application/problem+json`` (RFC 9457), and clients parse it by its type: this
worker writes that refusal in the same shape, with a request id like any answer.
Other malformed HTTP (no request line, bad headers) keeps gunicorn's own answer:
no HTTP client sends it.
"""

from __future__ import annotations

import uuid

import msgspec
from gunicorn import util
from gunicorn.http.errors import LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker

from api.errors import PROBLEM_TYPE_BASE

# gunicorn's own ceiling for limit_request_line (gunicorn.http.message.MAX_REQUEST_LINE).
MAX_REQUEST_LINE = 8190


def uri_too_long(limit: int) -> bytes:
    """The whole HTTP response for a request line over ``limit`` bytes."""
    request_id = uuid.uuid4().hex
    body = msgspec.json.encode(
        {
            "type": PROBLEM_TYPE_BASE + "uri-too-long",
            "title": "URI too long",
            "status": 414,
            "detail": f"The request line (method, path and query string) is limited to {limit} bytes.",
            "request_id": request_id,
        }
    )
    head = (
        "HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class ProblemThreadWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc):
        if not isinstance(exc, LimitRequestLine):
            return super().handle_error(req, client, addr, exc)
        self.log.warning("Request line too long from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, uri_too_long(self.cfg.limit_request_line or MAX_REQUEST_LINE))
        except OSError:
            self.log.debug("Failed to send the 414 answer.")
