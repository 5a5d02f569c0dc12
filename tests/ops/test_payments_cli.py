"""``hearth payments sandbox-event``: the signed event reaches the API's webhook path and verifies there."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ops.cli import main
from services.payments import SandboxProvider
from settings import Settings
from tests.conftest import REDIS_URL


@pytest.fixture
def api():
    """A stand-in for the running API that keeps what it was sent and answers as the webhook does."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            answer = b'{"received": true, "duplicate": false}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def environment(monkeypatch, tmp_path, redis_prefix):
    for name, value in {
        "HEARTH_ENV": "test",
        "HEARTH_VAR_DIR": str(tmp_path),
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": redis_prefix,
        "PAYMENTS_PROVIDER": "sandbox",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)
    return Settings.from_env()


def test_the_command_posts_a_verifiable_event_to_the_webhook_path(environment, redis, api, capsys):
    url, received = api
    sandbox = SandboxProvider(
        redis,
        environment.redis_prefix,
        webhook_secret=environment.stripe_webhook_secret,
        secret_key=environment.secret_key,
    )
    intent = sandbox.create_deposit(
        amount=1000, currency="usd", idempotency_key="cli-deposit", metadata={"offer_id": "9"}, description="d"
    )
    assert main(["payments", "sandbox-event", intent.id, "--outcome", "succeeded", "--api", url]) == 0
    assert '"duplicate": false' in capsys.readouterr().out
    [request] = received
    assert request["path"] == "/v1/webhooks/stripe"
    assert request["headers"]["Content-Type"] == "application/json"
    event = sandbox.parse_webhook(request["body"], request["headers"]["Stripe-Signature"], now=time.time())
    assert (event.type, event.object_id, event.amount, event.metadata) == (
        "payment_intent.succeeded",
        intent.id,
        1000,
        {"offer_id": "9"},
    )


def test_the_command_names_an_unknown_deposit_and_sends_nothing(environment, api, capsys):
    url, received = api
    assert main(["payments", "sandbox-event", "pi_sandbox_nothing", "--outcome", "failed", "--api", url]) == 1
    assert "No such payment_intent" in capsys.readouterr().err
    assert received == []
