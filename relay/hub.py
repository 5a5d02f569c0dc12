"""One Redis subscription per relay process, fanned out to the local connections.

The hub holds a single pub/sub connection and subscribes to a channel while
at least one local connection wants it (and a grace period after the last
one left, so a reconnecting client does not cause churn). ``join`` returns
only once Redis confirmed the subscription: anything published after that
arrives live, anything before it is in the channel's stream, which is what
makes resuming gap-free (see ``relay.connection``).

If the pub/sub connection breaks, the hub reconnects with backoff,
subscribes again, and asks every connection to catch up on each channel from
the stream, from the last id it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.retry import Retry

from services import metrics
from services.events import EventKeys, envelope, envelope_id, format_event_id, parse_event_id

log = logging.getLogger("hearth.relay")
REPLAY_PAGE = 200
SUBSCRIBE_BATCH = 500  # channels per SUBSCRIBE command
CONTROL_CHANNEL = "relay:control"


class HubUnavailable(Exception):
    """Redis did not confirm a subscription in time."""


class _Sub:
    __slots__ = ("conns", "idle_since", "ready")

    def __init__(self, loop):
        self.conns: set = set()
        self.ready: asyncio.Future = loop.create_future()
        self.idle_since: float | None = None


class Hub:
    def __init__(self, redis_url: str, prefix: str, redis, *, grace: float = 30.0, subscribe_timeout: float = 10.0):
        self.redis_url = redis_url
        self.keys = EventKeys(prefix)
        self.redis = redis  # redis.asyncio client for stream reads
        self.grace = grace
        self.subscribe_timeout = subscribe_timeout
        self._subs: dict[str, _Sub] = {}
        self._resync: set[str] = set()
        self._to_subscribe: set[str] = set()
        self._subscribe_wanted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pubsub: PubSub | None = None
        self._client: aioredis.Redis | None = None
        self._tasks: list[asyncio.Task] = []
        self.connected = asyncio.Event()
        # Names the pub/sub connection in CLIENT LIST (operators; tests cut it to prove recovery).
        self.client_name = "hearth-relay-" + re.sub(r"[^A-Za-z0-9:_-]", "_", prefix)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self, wait: float = 5.0) -> None:
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="relay-hub-reader"),
            asyncio.create_task(self._collect_idle(), name="relay-hub-gc"),
            asyncio.create_task(self._subscribe_forever(), name="relay-hub-subscriber"),
        ]
        try:
            await asyncio.wait_for(self.connected.wait(), wait)
        except TimeoutError:
            log.warning("relay started without Redis; retrying in the background")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._disconnect()

    # --- subscriptions -----------------------------------------------------------------

    async def join(self, channel: str, conn) -> None:
        """Deliver ``channel``'s live events to ``conn`` from now on; returns once Redis confirmed."""
        sub = self._subs.get(channel)
        if sub is None:
            sub = self._subs[channel] = _Sub(asyncio.get_running_loop())
            sub.conns.add(conn)
            # Subscribed by ``_subscribe_forever`` with every other channel asked for meanwhile: when
            # thousands of sockets connect at once (a deploy, a reconnect storm) that is one SUBSCRIBE
            # per SUBSCRIBE_BATCH of them, not one round trip each behind the lock.
            self._to_subscribe.add(channel)
            self._subscribe_wanted.set()
        else:
            sub.conns.add(conn)
            sub.idle_since = None
        try:
            await asyncio.wait_for(asyncio.shield(sub.ready), self.subscribe_timeout)
        except TimeoutError:
            self.leave(channel, conn)
            raise HubUnavailable(channel) from None

    async def _subscribe_forever(self) -> None:
        while True:
            await self._subscribe_wanted.wait()
            self._subscribe_wanted.clear()
            async with self._lock:
                wanted = [c for c in self._to_subscribe if c in self._subs and not self._subs[c].ready.done()]
                self._to_subscribe.clear()
                pubsub = self._pubsub
                if pubsub is None:
                    continue  # the reconnect subscribes every channel in ``_subs``
                for start in range(0, len(wanted), SUBSCRIBE_BATCH):
                    keys = [self.keys.channel_key(c) for c in wanted[start : start + SUBSCRIBE_BATCH]]
                    try:
                        await pubsub.subscribe(*keys)
                    except Exception:
                        log.warning("subscribe failed; waiting for the reconnect", exc_info=True)
                        break

    def leave(self, channel: str, conn) -> None:
        sub = self._subs.get(channel)
        if sub is not None:
            sub.conns.discard(conn)
            if not sub.conns:
                sub.idle_since = time.monotonic()

    def local_connections(self, channel: str) -> int:
        sub = self._subs.get(channel)
        return len(sub.conns) if sub else 0

    async def _collect_idle(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.grace / 2))
            await self.collect_idle()

    async def collect_idle(self) -> list[str]:
        """Unsubscribe channels no local connection wanted for the grace period."""
        now = time.monotonic()
        async with self._lock:
            stale = [
                channel
                for channel, sub in self._subs.items()
                if not sub.conns
                and sub.ready.done()
                and sub.idle_since is not None
                and now - sub.idle_since >= self.grace
            ]
            for channel in stale:
                del self._subs[channel]
            if stale and self._pubsub is not None:
                try:
                    await self._pubsub.unsubscribe(*(self.keys.channel_key(c) for c in stale))
                except Exception:
                    log.warning("unsubscribe failed", exc_info=True)
        return stale

    # --- stream reads --------------------------------------------------------------------

    async def history(self, channel: str, after: tuple[int, int], count: int = REPLAY_PAGE):
        """Events of ``channel`` after ``after``: ``[(id, envelope text)]``, oldest first."""
        start = "-" if after == (0, 0) else "(" + format_event_id(after)
        entries = await self.redis.xrange(self.keys.stream_key(channel), start, "+", count=count)
        out = []
        for raw_id, fields in entries:
            event_id = raw_id.decode()
            out.append((parse_event_id(event_id), envelope(channel, event_id, fields[b"e"].decode())))
        return out

    async def holds(self, channel: str, event_id: tuple[int, int]) -> bool:
        """Whether the stream still holds the event ``event_id`` (if not, history after it may be gone)."""
        text = format_event_id(event_id)
        return bool(await self.redis.xrange(self.keys.stream_key(channel), text, text, count=1))

    async def last_id(self, channel: str) -> tuple[int, int]:
        entries = await self.redis.xrevrange(self.keys.stream_key(channel), "+", "-", count=1)
        return parse_event_id(entries[0][0].decode()) if entries else (0, 0)

    # --- the reader ------------------------------------------------------------------------

    async def _connect(self) -> PubSub:
        """Connect, subscribe to every channel wanted (and the control channel), and return the subscription."""
        # No retries inside redis-py: a broken connection surfaces here, so the
        # hub knows to catch its connections up after reconnecting.
        self._client = aioredis.Redis.from_url(
            self.redis_url,
            health_check_interval=10,
            socket_connect_timeout=5,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            client_name=self.client_name,
        )
        pubsub = self._client.pubsub()
        async with self._lock:
            channels = list(self._subs)
            for channel in channels:
                sub = self._subs[channel]
                if sub.ready.done():
                    sub.ready = asyncio.get_running_loop().create_future()
                    self._resync.add(channel)
            keys = [self.keys.channel_key(CONTROL_CHANNEL), *(self.keys.channel_key(c) for c in channels)]
            await pubsub.subscribe(*keys)
            self._pubsub = pubsub
        self.connected.set()
        return pubsub

    async def _disconnect(self) -> None:
        self.connected.clear()
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        for closer in (getattr(pubsub, "aclose", None), getattr(client, "aclose", None)):
            if closer is not None:
                with contextlib.suppress(Exception):  # it is going away anyway
                    await closer()

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                pubsub = await self._connect()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("relay lost its Redis subscription; reconnecting", exc_info=True)
                await self._disconnect()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _dispatch(self, message: dict) -> None:
        kind = message["type"]
        if kind == "message":
            channel = self.keys.channel_of(message["channel"].decode())
            sub = self._subs.get(channel)
            if sub is None or not sub.conns:
                return
            text = message["data"].decode()
            event_id = parse_event_id(envelope_id(text))
            conns = tuple(sub.conns)
            for conn in conns:
                conn.deliver(channel, event_id, text)
            metrics.RELAY_EVENTS.inc(len(conns))
        elif kind == "subscribe":
            channel = self.keys.channel_of(message["channel"].decode())
            sub = self._subs.get(channel)
            if sub is None:
                return
            if not sub.ready.done():
                sub.ready.set_result(None)
            if channel in self._resync:
                self._resync.discard(channel)
                for conn in tuple(sub.conns):
                    conn.resync(channel)
