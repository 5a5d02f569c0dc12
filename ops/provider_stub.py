"""A stand-in for SendGrid, Twilio and Stripe that records every request: tests and local runs send to it.

The real ``sendgrid``, ``twilio`` and ``stripe`` client libraries talk to it exactly
as they talk to the providers (``SENDGRID_API_URL`` / ``TWILIO_API_URL`` /
``STRIPE_API_URL``):

* ``POST /v3/mail/send`` → 202 with an ``X-Message-Id`` header (SendGrid);
* ``POST /2010-04-01/Accounts/{sid}/Messages.json`` → 201 with a Twilio message
  resource (``sid`` "SM…", ``status`` "queued", ``to``, ``from``, ``body``, …);
* Stripe's PaymentIntents, Refunds and Transfers under ``/v1/``, with Stripe's
  idempotency keys (``ops/provider_stub_stripe.py``).

Requests are kept per namespace, so concurrent tests never see each other's:
SendGrid's and Stripe's is the API key (``Authorization: Bearer <key>``),
Twilio's the account SID in the path. The control API, for tests:

* ``GET /_recorded?ns=<ns>``: the namespace's requests, oldest first, each
  ``{method, path, query, headers, body, json, form, status, at}`` (``status``
  is null while the answer is still being held back);
* ``POST /_program`` with ``{"ns", "responses": [{"status", "body"?,
  "delay_seconds"?}]}``: scripted answers, consumed in order by the next
  requests of the namespace (first a 503, then normal; a 400; hang 30 s). A
  2xx without ``body`` is the normal answer, an error without one the
  provider's usual error document;
* ``POST /_reset?ns=<ns>``: forget the namespace's requests and script.

``python -m ops.provider_stub --port 8025`` runs it by hand (``ops.testrun``
starts one for the test run and exports ``TEST_PROVIDERS_URL``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from ops.provider_stub_stripe import StripeState, is_stripe_path, nested_form, stripe_error

_TWILIO_MESSAGES = re.compile(r"^/2010-04-01/Accounts/([A-Za-z0-9]{1,64})/Messages\.json$")
MAX_BODY = 4 * 1024 * 1024
MAX_DELAY = 120.0


class Recorder:
    """Requests and scripted answers per namespace; every method is thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._requests: dict[str, list[dict]] = collections.defaultdict(list)
        self._scripts: dict[str, collections.deque] = collections.defaultdict(collections.deque)

    def record(self, ns: str, entry: dict) -> dict | None:
        """Keep ``entry``; returns the next scripted answer of ``ns`` (None: answer normally)."""
        with self._lock:
            self._requests[ns].append(entry)
            script = self._scripts.get(ns)
            return script.popleft() if script else None

    def answered(self, entry: dict, status: int) -> None:
        with self._lock:
            entry["status"] = status

    def recorded(self, ns: str) -> list[dict]:
        with self._lock:
            return [dict(entry) for entry in self._requests.get(ns, ())]

    def program(self, ns: str, responses: list[dict]) -> None:
        with self._lock:
            self._scripts[ns].extend(responses)

    def reset(self, ns: str) -> None:
        with self._lock:
            self._requests.pop(ns, None)
            self._scripts.pop(ns, None)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _sendgrid_error(status: int) -> dict:
    return {"errors": [{"message": f"scripted error {status}", "field": None, "help": None}]}


def _twilio_error(status: int) -> dict:
    code = 21211 if status == 400 else 20000 + status
    return {
        "code": code,
        "message": f"scripted error {status}",
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _twilio_message(sid: str, form: dict) -> dict:
    now = datetime.datetime.now(datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message_sid = "SM" + uuid.uuid4().hex
    body = form.get("Body", "")
    return {
        "sid": message_sid,
        "account_sid": sid,
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "to": form.get("To"),
        "from": form.get("From"),
        "body": body,
        "status": "queued",
        "num_segments": str(max(1, -(-len(body) // 153))),
        "num_media": "0",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "price": None,
        "price_unit": "USD",
        "error_code": None,
        "error_message": None,
        "date_created": now,
        "date_updated": now,
        "date_sent": None,
        "uri": f"/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
        "subresource_uris": {},
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "HearthProviderStub/1"
    protocol_version = "HTTP/1.1"
    recorder: Recorder  # set on the class built by make_server
    stripe: StripeState  # likewise

    def log_message(self, format, *args):
        pass

    # --- plumbing ---------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _answer(self, status: int, payload=None, headers: dict | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout, a killed worker): what it was sent no longer matters.
            self.close_connection = True

    def do_GET(self):
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        if url.path == "/_recorded" and query.get("ns"):
            return self._answer(200, self.recorder.recorded(query["ns"]))
        if url.path == "/_health":
            return self._answer(200, {"ok": True})
        if is_stripe_path(url.path):
            return self._provider("stripe", url, b"")
        return self._answer(404, {"error": "not found"})

    def do_POST(self):
        url = urlsplit(self.path)
        raw = self._read_body()
        if url.path == "/_program":
            return self._program(raw)
        if url.path == "/_reset":
            ns = dict(parse_qsl(url.query)).get("ns")
            if not ns:
                return self._answer(400, {"error": "ns is required"})
            self.recorder.reset(ns)
            self.stripe.reset(ns)
            return self._answer(204)
        if url.path == "/v3/mail/send":
            return self._provider("sendgrid", url, raw)
        if _TWILIO_MESSAGES.match(url.path):
            return self._provider("twilio", url, raw)
        if is_stripe_path(url.path):
            return self._provider("stripe", url, raw)
        return self._answer(404, {"error": "not found"})

    def _program(self, raw: bytes) -> None:
        try:
            spec = json.loads(raw)
            ns, responses = spec["ns"], spec["responses"]
            if not isinstance(ns, str) or not ns or not isinstance(responses, list):
                raise ValueError
            for response in responses:
                if not 100 <= int(response["status"]) <= 599:
                    raise ValueError
        except (ValueError, KeyError, TypeError):
            return self._answer(400, {"error": "expected {ns, responses: [{status, body?, delay_seconds?}]}"})
        self.recorder.program(ns, responses)
        return self._answer(204)

    # --- the providers ----------------------------------------------------------------

    def _provider(self, provider: str, url, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace")
        entry = {
            "method": self.command,
            "path": url.path,
            "query": dict(parse_qsl(url.query)),
            "headers": dict(self.headers.items()),
            "body": text,
            "json": None,
            "form": None,
            "status": None,
            "at": _now(),
        }
        content_type = self.headers.get("Content-Type", "")
        if "json" in content_type:
            with contextlib.suppress(ValueError):
                entry["json"] = json.loads(text)
        elif "x-www-form-urlencoded" in content_type:
            entry["form"] = dict(parse_qsl(text, keep_blank_values=True))
        if provider in ("sendgrid", "stripe"):
            auth = self.headers.get("Authorization", "")
            ns = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        else:
            ns = _TWILIO_MESSAGES.match(url.path).group(1)
        scripted = self.recorder.record(ns or "-", entry)
        if provider == "stripe":
            status, payload, headers = self._stripe_response(ns, entry, scripted)
        else:
            status, payload, headers = self._response(provider, ns, entry, scripted)
        self.recorder.answered(entry, status)
        self._answer(status, payload, headers)

    def _stripe_response(self, ns: str, entry: dict, scripted: dict | None):
        if not ns:
            return 401, stripe_error(401, message="You did not provide an API key."), {}
        if scripted:
            if scripted.get("delay_seconds"):
                time.sleep(min(float(scripted["delay_seconds"]), MAX_DELAY))
            status = int(scripted["status"])
            if "body" in scripted:
                return status, scripted["body"], {}
            if status >= 400:
                return status, stripe_error(status), {}
        pairs = parse_qsl(
            entry["body"] if entry["method"] == "POST" else urlsplit(self.path).query, keep_blank_values=True
        )
        params = nested_form(pairs)
        key = self.headers.get("Idempotency-Key")
        return self.stripe.answer(ns, entry["method"], entry["path"], params, key)

    @staticmethod
    def _response(provider: str, ns: str, entry: dict, scripted: dict | None):
        if not ns:
            return 401, _sendgrid_error(401), {}
        normal = 202 if provider == "sendgrid" else 201
        status = int(scripted["status"]) if scripted else normal
        if scripted and scripted.get("delay_seconds"):
            time.sleep(min(float(scripted["delay_seconds"]), MAX_DELAY))
        if scripted and "body" in scripted:
            return status, scripted["body"], {}
        if status >= 400:
            return status, (_sendgrid_error if provider == "sendgrid" else _twilio_error)(status), {}
        if provider == "sendgrid":
            return status, None, {"X-Message-Id": uuid.uuid4().hex[:22]}
        return status, _twilio_message(ns, entry["form"] or {}), {}


@dataclass
class ProviderStub:
    url: str
    server: ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def make_server(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    handler = type("ProviderStubHandler", (Handler,), {"recorder": Recorder(), "stripe": StripeState()})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a held-back answer must not keep the process alive
    return server


def start_provider_stub(host: str = "127.0.0.1", port: int = 0) -> ProviderStub:
    """Serve on a thread of this process (port 0: a free one); ``stop()`` ends it."""
    server = make_server(host, port)
    thread = threading.Thread(target=server.serve_forever, name="provider-stub", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return ProviderStub(f"http://{bound_host}:{bound_port}", server, thread)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Record what would be sent to SendGrid, Twilio and Stripe.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port)
    print(f"provider stub at http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
