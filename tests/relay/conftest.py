"""The relay in this process: the real ASGI app, real Redis, the test's database transaction.

Each test runs its scenario with ``run(scenario)``: the app's lifespan starts
(its Redis subscription), websocket clients are simulated by Falcon's ASGI
conductor, and database reads happen in the event loop's thread so they see
the rows the test wrote in its (rolled-back) transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
import pytest
from falcon import testing
from falcon.errors import WebSocketDisconnected

from models import sessions
from relay.app import build_relay, create_relay
from services.events import EventBus
from services.tokens import KeyRing, TokenIssuer


async def inline(fn, *args):
    """Run a database call in the loop's thread: it must see the test's transaction."""
    return fn(*args)


class Client:
    """A simulated websocket client speaking JSON."""

    def __init__(self, ws):
        self.ws = ws

    async def send(self, **message) -> None:
        await self.ws.send_text(msgspec.json.encode(message).decode())

    async def recv(self, timeout: float = 3.0, *, heartbeats: bool = False) -> dict:
        """The next message; heartbeats are passed over unless asked for (they come every second
        here, and on a loaded machine one may arrive between a request and its answer)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.01, deadline - time.monotonic())
            message = msgspec.json.decode(await asyncio.wait_for(self.ws.receive_text(), remaining))
            if heartbeats or message.get("type") != "heartbeat":
                return message

    async def recv_until(self, predicate, timeout: float = 3.0) -> list[dict]:
        """Messages up to and including the first one ``predicate`` accepts."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            seen.append(await self.recv(max(0.01, deadline - time.monotonic()), heartbeats=True))
            if predicate(seen[-1]):
                return seen

    async def closed_with(self, timeout: float = 5.0) -> int:
        """Read until the server closes; returns its close code."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                await asyncio.wait_for(self.ws.receive_text(), max(0.01, deadline - time.monotonic()))
        except WebSocketDisconnected:
            return self.ws.close_code
        raise AssertionError("the server did not close the connection")


class Relay:
    def __init__(self, state, settings):
        self.state = state  # the relay's shared parts: hub, auth, connections
        self.app = create_relay(settings, relay=state, init_db=False)
        self.settings = settings
        self.conductor = None

    async def connect(
        self, token: str | None = None, *, path="/v1/realtime", last_event_id=None, subprotocols=None
    ) -> Client:
        path, _, query = path.partition("?")
        ctx = self.conductor.simulate_ws(path, query_string=query or None, subprotocols=subprotocols)
        ws = await ctx.__aenter__()
        self._contexts.append(ctx)
        client = Client(ws)
        if token is not None:
            message = {"type": "auth", "token": token}
            if last_event_id is not None:
                message["last_event_id"] = last_event_id
            await client.send(**message)
        return client

    def run(self, scenario) -> None:
        async def main():
            self._contexts = []
            async with testing.ASGIConductor(self.app) as conductor:
                self.conductor = conductor
                try:
                    await asyncio.wait_for(scenario(self), 30)
                finally:
                    for ctx in reversed(self._contexts):
                        with contextlib.suppress(Exception):  # the scenario may have closed it
                            await ctx.__aexit__(None, None, None)

        asyncio.run(main())


@pytest.fixture
def relay_settings(settings):
    """Quick timers, so time-based behaviour shows within a test."""
    import dataclasses

    return dataclasses.replace(settings, relay_heartbeat_interval=1, relay_idle_timeout=3, relay_auth_timeout=1)


@pytest.fixture
def relay(relay_settings):
    return Relay(build_relay(relay_settings, blocking=inline, hub_grace=0.2), relay_settings)


@pytest.fixture
def bus(redis, settings):
    return EventBus(redis, settings.redis_prefix)


@pytest.fixture
def tokens(settings):
    return TokenIssuer(
        KeyRing.from_settings(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl,
    )


@pytest.fixture
def token_for(settings, tokens):
    """An access token of a fresh session of ``user`` (``expires_in`` seconds from now, if given)."""

    def make(user, *, expires_in: float | None = None) -> str:
        session, _ = sessions.start_session(user, ttl=3600, user_agent="relay test", ip=None)
        issuer = tokens
        if expires_in is not None:
            issuer = TokenIssuer(
                tokens.keys,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                ttl=settings.access_token_ttl,
                clock=lambda: time.time() - settings.access_token_ttl + expires_in,
            )
        token, _ = issuer.issue(user_id=user.id, role=user.role, session_id=session.id)
        make.session_id = session.id
        return token

    return make
