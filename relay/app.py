"""The websocket relay: ``uvicorn relay.app:app`` serves ``/v1/realtime`` (docs/jobs-and-events.md).

A Falcon ASGI app. Each connection authenticates with an API access token in
its first message (``relay.auth``), receives its user's events (``user:{id}``),
and may subscribe to further channels that ``relay.channels`` allows
(``job:{id}``). One Redis subscription per process (``relay.hub``) fans events
out to the local connections; ``relay.connection`` runs each connection.

``create_relay(settings, **collaborators)`` builds the app; ``app`` (built from
the environment on first access) is what uvicorn imports.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from dataclasses import dataclass

import falcon
import falcon.asgi
import redis as redis_lib
import redis.asyncio as aioredis

from models.db import init_database
from models.session_cache import SessionCache
from relay import protocol as proto
from relay.admission import Admission
from relay.auth import RelayAuth
from relay.channels import ChannelCache
from relay.connection import Connection
from relay.hub import Hub
from relay.session_watch import SessionWatch
from services import metrics
from services.client_address import address_bucket, client_address
from services.tokens import KeyRing, TokenIssuer
from settings import Settings

log = logging.getLogger("hearth.relay")
# A relay holds about a hundred tracked objects per socket. With 10,000 sockets, each full collection
# walked more than a million of them and stopped the event loop for 0.5-3 s (measured under load):
# that was the relay's p99 of delivery. Objects made for one event or one message die young; a large
# first threshold lets them die before they are promoted, so older generations, and full collections
# over the sockets' objects, come rarely (memory held by garbage cycles is reclaimed later, not never).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    """For a relay process (not for tests that build one): freeze what start-up built, collect rarely."""
    gc.collect()
    gc.freeze()  # modules, settings and the app: never scanned again
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass
class Relay:
    """What every connection of one relay process shares."""

    settings: Settings
    hub: Hub
    auth: RelayAuth
    clock: object
    connections: set
    admission: Admission
    watch: SessionWatch

    async def start(self) -> None:
        await self.hub.start()
        self.watch.start()

    async def stop(self) -> None:
        # uvicorn has closed its connections (1012) by now; any left get 1001.
        for conn in list(self.connections):
            conn.close(proto.GOING_AWAY)
        deadline = time.monotonic() + 5
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.watch.stop()
        await self.hub.stop()
        await self.auth.redis.aclose()
        # Its connections no longer count in the live gauge (a crash leaves them until the host's restart).
        metrics.process_exited(os.getpid())


class Realtime:
    def __init__(self, relay: Relay):
        self.relay = relay
        origins = relay.settings.cors_origins
        # The CORS allow-list: a browser always sends Origin, so a page elsewhere is refused.
        # No Origin is a script or an app, which holds a token of its own and needs no ambient rights.
        self.allowed_origins = None if "*" in origins else frozenset(origins)

    async def on_websocket(self, req, ws):
        origin = req.get_header("Origin")
        if origin is not None and self.allowed_origins is not None and origin not in self.allowed_origins:
            await ws.close()  # before accept: the handshake is refused with 403
            return
        relay = self.relay
        address = address_bucket(
            client_address(req.remote_addr, req.get_header("X-Forwarded-For"), relay.settings.trusted_proxies)
        )
        ticket = relay.admission.admit(address)
        if ticket is None:
            relay.admission.refused += 1
            # Accepted only to say why: clients reconnect after 1013 with backoff.
            await ws.accept()
            await ws.close(proto.TRY_AGAIN_LATER, relay.admission.refusal(address))
            return
        conn = Connection(
            ws,
            hub=relay.hub,
            auth=relay.auth,
            options=relay.settings,
            clock=relay.clock,
            ticket=ticket,
            watch=relay.watch,
        )
        relay.connections.add(conn)
        metrics.RELAY_CONNECTIONS.inc()
        try:
            await conn.run(req)
        finally:
            ticket.release()
            relay.connections.discard(conn)
            metrics.RELAY_CONNECTIONS.dec()


class Health:
    def __init__(self, relay: Relay):
        self.relay = relay

    async def on_get(self, req, resp):
        connected = self.relay.hub.connected.is_set()
        resp.status = falcon.HTTP_200 if connected else falcon.HTTP_503
        admission = self.relay.admission
        resp.media = {
            "status": "ok" if connected else "redis unavailable",
            "connections": len(self.relay.connections),
            "unauthenticated": admission.count,
            "refused_unauthenticated": admission.refused,
        }


class _Lifecycle:
    def __init__(self, relay: Relay):
        self.relay = relay

    async def process_startup(self, scope, event):
        await self.relay.start()

    async def process_shutdown(self, scope, event):
        await self.relay.stop()


def build_relay(
    settings: Settings, *, redis=None, blocking=None, clock=time.time, keys=None, hub_grace: float = 30.0
) -> Relay:
    aredis = redis or aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_url, max_connections=64, timeout=5, socket_timeout=5, socket_connect_timeout=5
        )
    )
    tokens = TokenIssuer(
        keys or KeyRing.from_settings(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl,
        clock=clock,
    )
    sync_redis = redis_lib.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    sessions = SessionCache(sync_redis, settings.redis_prefix, ttl=settings.access_token_ttl)
    auth = RelayAuth(tokens, aredis, sessions, ChannelCache(), **({"blocking": blocking} if blocking else {}))
    hub = Hub(settings.redis_url, settings.redis_prefix, aredis, grace=hub_grace)
    admission = Admission(settings.relay_unauthenticated_per_address, settings.relay_unauthenticated_max)
    watch = SessionWatch(auth, settings.relay_heartbeat_interval)
    return Relay(
        settings=settings, hub=hub, auth=auth, clock=clock, connections=set(), admission=admission, watch=watch
    )


def create_relay(
    settings: Settings, *, relay: Relay | None = None, init_db: bool = True, **collaborators
) -> falcon.asgi.App:
    """Build the ASGI app; ``relay``: prebuilt shared state (tests keep a handle on it)."""
    if init_db:
        init_database(settings)
    relay = relay or build_relay(settings, **collaborators)
    app = falcon.asgi.App(middleware=[_Lifecycle(relay)])
    app.ws_options.error_close_code = proto.INTERNAL_ERROR
    app.add_route("/v1/realtime", Realtime(relay))
    app.add_route("/healthz", Health(relay))
    return app


def __getattr__(name: str):
    # ``uvicorn relay.app:app`` reads this; importing the module for its parts builds nothing.
    if name == "app":
        from services.logging import configure_logging

        settings = Settings.from_env()
        configure_logging(settings, "relay")
        globals()["app"] = built = create_relay(settings)
        tune_garbage_collector()
        return built
    raise AttributeError(name)
