"""Support for tests with a real relay under uvicorn (tests/integration/test_relay_*.py)."""

from __future__ import annotations

import json
import time

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from models import sessions
from ops.relay_command import relay_argv
from services.tokens import KeyRing, TokenIssuer
from settings import Settings
from tests.integration.processes import BIN, Proc, environment, free_port, wait_for


def start_relay(env: dict, log_dir, **settings_env) -> tuple[Proc, str]:
    """``uvicorn relay.app:app`` with the flags production uses; returns the process and its ws:// URL."""
    port = free_port()
    argv = relay_argv(str(BIN / "uvicorn"), "127.0.0.1", port, "--timeout-graceful-shutdown", "5")
    proc = Proc("relay", argv, environment({**env, **settings_env}), log_dir)
    base = f"http://127.0.0.1:{port}"
    wait_for(
        lambda: httpx.get(base + "/healthz", timeout=1).status_code == 200 or not proc.alive(),
        what="the relay to answer /healthz",
    )
    assert proc.alive(), proc.output()
    return proc, f"ws://127.0.0.1:{port}/v1/realtime"


def token(env: dict, user, *, expires_in: float | None = None) -> tuple[str, object]:
    """An access token for a new session of ``user`` (committed to the live database); (token, session id)."""
    settings = Settings.from_env(env)
    session, _ = sessions.start_session(user, ttl=3600, user_agent="relay test", ip=None)
    clock = time.time
    if expires_in is not None:
        clock = lambda: time.time() - settings.access_token_ttl + expires_in  # noqa: E731
    issuer = TokenIssuer(
        KeyRing.from_settings(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl,
        clock=clock,
    )
    raw, _ = issuer.issue(user_id=user.id, role=user.role, session_id=session.id)
    return raw, session.id


class WsClient:
    """A websocket client of the relay speaking JSON (the ``websockets`` library, as a script would)."""

    def __init__(self, url: str, **options):
        options.setdefault("compression", None)
        self.conn = connect(url, open_timeout=5, close_timeout=2, **options).__enter__()

    @classmethod
    def authenticated(cls, url: str, raw_token: str, last_event_id: str | None = None, **options) -> WsClient:
        client = cls(url, **options)
        message = {"type": "auth", "token": raw_token}
        if last_event_id is not None:
            message["last_event_id"] = last_event_id
        client.send(**message)
        ready = client.recv()
        assert ready["type"] == "ready", ready
        return client

    def send(self, **message) -> None:
        self.conn.send(json.dumps(message))

    def recv(self, timeout: float = 5.0) -> dict:
        return json.loads(self.conn.recv(timeout=timeout))

    def events(self, count: int, timeout: float = 10.0) -> list[dict]:
        """The next ``count`` events (messages with an id), skipping control messages."""
        out, deadline = [], time.monotonic() + timeout
        while len(out) < count:
            message = self.recv(max(0.01, deadline - time.monotonic()))
            if "id" in message:
                out.append(message)
        return out

    def closed_with(self, timeout: float = 10.0) -> tuple[int, str]:
        """Read until the relay closes the connection; its (code, reason)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.conn.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as exc:
            return exc.rcvd.code, exc.rcvd.reason
        except TimeoutError:
            pass
        raise AssertionError("the relay did not close the connection")

    def close(self) -> None:
        self.conn.close()
