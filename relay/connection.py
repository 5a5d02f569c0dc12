"""One websocket client of the relay: authentication, channels, resume, heartbeats, limits.

Outbound messages go through a bounded queue drained by one sender task. A
live event that finds the queue full closes the connection with ``TOO_SLOW``
(4429): a client that does not read can never make the relay hold more than
``RELAY_SEND_QUEUE`` messages for it. Replayed history waits for room instead
(it is read from Redis at the pace the client takes it).

Joining a channel is gap-free and duplicate-free: the channel's state starts
"replaying", so live events that arrive meanwhile are held; the hub confirms
the Redis subscription; the stream is read after the resume point; then held
live events newer than the last replayed id are released, and from then on
only events with a larger id than the last one sent go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import time
from collections import deque

from falcon import WebSocketDisconnected
from falcon.errors import PayloadTypeError
from redis.exceptions import RedisError

from models.session_cache import REVOKED
from relay import protocol as proto
from relay.auth import Identity, RelayAuth
from relay.hub import REPLAY_PAGE, HubUnavailable
from relay.protocol import Close
from services import metrics
from services.events import InvalidChannel, check_channel, parse_event_id

log = logging.getLogger("hearth.relay")


class ChannelState:
    __slots__ = ("again", "last_id", "pending", "replaying")

    def __init__(self):
        self.last_id: tuple[int, int] = (0, 0)
        self.replaying = True
        self.pending: list = []
        self.again = False


class Connection:
    def __init__(self, ws, *, hub, auth: RelayAuth, options, clock=time.time, ticket=None, watch=None):
        self.ws = ws
        self.watch = watch  # the process's SessionWatch: re-reads this socket's session every heartbeat interval
        self.ticket = ticket  # its place among the unauthenticated sockets (relay.admission)
        self.hub = hub
        self.auth = auth
        self.options = options
        self.clock = clock
        self._identity: Identity | None = None
        self.channels: dict[str, ChannelState] = {}
        self.queue: deque[str] = deque()
        self.limit = options.relay_send_queue
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self.closing = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.last_heard = time.monotonic()
        self._tasks: set[asyncio.Task] = set()

    @property
    def identity(self) -> Identity:
        """Who is on the connection, from its auth message on (nothing reads it before)."""
        if self._identity is None:
            raise RuntimeError("the connection has not authenticated yet")
        return self._identity

    @property
    def authenticated(self) -> bool:
        return self._identity is not None and not self.closing.is_set()

    def session_seen(self, state: bytes) -> None:
        """What the session store says of this socket's session now (``SessionWatch``)."""
        if state == REVOKED:
            self.close(proto.SESSION_ENDED, "this session has ended; log in again")
        elif self._identity is not None and state.decode() != self._identity.role:
            self._identity.role = state.decode()
            self._spawn(self._recheck_channels())

    # --- ending ------------------------------------------------------------------------

    def close(self, code: int | None, reason: str | None = None) -> None:
        """Ask the connection to end with ``code`` (None: the client is gone, send nothing)."""
        if self.closing.is_set():
            return
        if code == proto.TOO_SLOW:
            metrics.RELAY_SLOW_CLOSES.inc()
        self.close_code = code
        self.close_reason = (reason or proto.CLOSE_REASONS.get(code or 0, ""))[:120]
        self.closing.set()
        self._room.set()
        self._wake.set()

    # --- outbound ------------------------------------------------------------------------

    def send(self, message: dict) -> None:
        self.offer(proto.encode(message))

    def offer(self, text: str) -> None:
        """Queue a message now, or close the connection as too slow when the queue is full."""
        if self.closing.is_set():
            return
        if len(self.queue) >= self.limit:
            self.close(proto.TOO_SLOW)
            return
        self.queue.append(text)
        self._wake.set()

    async def _put(self, text: str) -> None:
        """Queue a replayed message, waiting while the queue is more than half full."""
        while len(self.queue) >= max(1, self.limit // 2):
            if self.closing.is_set():
                raise Close(self.close_code or proto.NORMAL)
            self._room.clear()
            await self._room.wait()
        if not self.closing.is_set():
            self.queue.append(text)
            self._wake.set()

    async def _send_loop(self) -> None:
        ws, queue = self.ws, self.queue
        while True:
            if not queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            text = queue.popleft()
            self._room.set()
            await ws.send_text(text)

    # --- live events from the hub -----------------------------------------------------

    def deliver(self, channel: str, event_id: tuple[int, int], text: str) -> None:
        state = self.channels.get(channel)
        if state is None:
            return
        if state.replaying:
            if len(state.pending) >= self.limit:
                self.close(proto.TOO_SLOW)
                return
            state.pending.append((event_id, text))
        elif event_id > state.last_id:
            state.last_id = event_id
            self.offer(text)

    def resync(self, channel: str) -> None:
        """The hub resubscribed after losing Redis: catch ``channel`` up from the stream."""
        state = self.channels.get(channel)
        if state is None:
            return
        if state.replaying:
            state.again = True
            return
        state.replaying = True
        self._spawn(self._replay(channel, state))

    # --- channels ------------------------------------------------------------------------

    async def join(self, channel: str, last_event_id: str | None) -> None:
        state = self.channels[channel] = ChannelState()
        if last_event_id is None:
            # Live from now: the tip is read before subscribing, and what lands between
            # the two is replayed, so nothing published after this point is missed.
            state.last_id = await self.hub.last_id(channel)
            await self.hub.join(channel, self)
        else:
            await self.hub.join(channel, self)
            after = (0, 0) if last_event_id == "0" else parse_event_id(last_event_id)
            if after != (0, 0) and not await self.hub.holds(channel, after):
                # The stream no longer holds the client's last event: what came after it
                # may have been trimmed. Say so, and carry on live from the current tip.
                self.send({"type": "reset", "channel": channel, "reason": "history_unavailable"})
                after = await self.hub.last_id(channel)
            state.last_id = after
        await self._replay(channel, state)

    async def _replay(self, channel: str, state: ChannelState) -> None:
        while True:
            after = state.last_id
            while True:
                page = await self.hub.history(channel, after)
                for event_id, text in page:
                    if event_id > state.last_id:
                        state.last_id = event_id
                        await self._put(text)
                if len(page) < REPLAY_PAGE:
                    break
                after = page[-1][0]
            if not state.again:
                break
            state.again = False
        # No await from here on: held live events and the switch to live happen at once.
        for event_id, text in state.pending:
            if event_id > state.last_id:
                state.last_id = event_id
                self.offer(text)
        state.pending = []
        state.replaying = False

    def leave_all(self) -> None:
        for channel in self.channels:
            self.hub.leave(channel, self)
        self.channels.clear()

    # --- the connection's life ------------------------------------------------------------

    async def run(self, req) -> None:
        try:
            await self._open(req)
            await self.closing.wait()
        except Close as exc:
            self.close(exc.code, exc.reason)
        except WebSocketDisconnected:
            self.close(None)
        except (HubUnavailable, RedisError):
            self.close(proto.TRY_AGAIN_LATER, "event bus unavailable")
        except Exception:
            log.exception("relay connection failed")
            self.close(proto.INTERNAL_ERROR)
        finally:
            await self._end()

    async def _open(self, req) -> None:
        ws = self.ws
        if any(name in req.params for name in ("token", "access_token", "jwt")):
            await ws.accept()
            raise Close(proto.PROTOCOL_ERROR, "do not put tokens in URLs; send them in the auth message")
        await ws.accept(subprotocol=proto.SUBPROTOCOL if proto.SUBPROTOCOL in ws.subprotocols else None)
        try:
            first = await asyncio.wait_for(ws.receive_text(), self.options.relay_auth_timeout)
        except TimeoutError:
            raise Close(proto.UNAUTHENTICATED, "send the auth message first") from None
        except PayloadTypeError:
            raise Close(proto.PROTOCOL_ERROR, "messages are JSON text") from None
        message = proto.decode(first)
        if not isinstance(message, proto.Auth):
            raise Close(proto.UNAUTHENTICATED, "the first message must be auth")
        self._identity = await self.auth.authenticate(message.token)
        if self.watch is not None:
            self.watch.add(self)
        if self.ticket is not None:
            self.ticket.release()
        self.last_heard = time.monotonic()
        self._spawn(self._send_loop())
        user_channel = f"user:{self.identity.user_id}"
        self.send(
            {
                "type": "ready",
                "user_id": self.identity.user_id,
                "channel": user_channel,
                "expires_at": self.identity.expires_at,
                "heartbeat": self.options.relay_heartbeat_interval,
                "idle_timeout": self.options.relay_idle_timeout,
            }
        )
        await self.join(user_channel, message.last_event_id)
        self._spawn(self._receive_loop())
        self._spawn(self._watchdog())

    async def _end(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.watch is not None:
            self.watch.discard(self)
        self.leave_all()
        self.queue.clear()
        if self.close_code is not None and not self.ws.closed:
            with contextlib.suppress(Exception):  # the client is gone or not reading; nothing more to do
                await asyncio.wait_for(self.ws.close(self.close_code, self.close_reason), 5)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Close as exc:
            self.close(exc.code, exc.reason)
        except (WebSocketDisconnected, ConnectionError):
            self.close(None)
        except (HubUnavailable, RedisError):
            # Redis went away while replaying (e.g. the catch-up after the hub reconnected):
            # the client reconnects with backoff and resumes, as for any outage.
            self.close(proto.TRY_AGAIN_LATER, "event bus unavailable")
        except Exception:
            log.exception("relay connection task failed")
            self.close(proto.INTERNAL_ERROR)

    # --- inbound ----------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        ws = self.ws
        while True:
            try:
                text = await ws.receive_text()
            except PayloadTypeError:
                raise Close(proto.PROTOCOL_ERROR, "messages are JSON text") from None
            self.last_heard = time.monotonic()
            await self._handle(proto.decode(text))

    async def _handle(self, message) -> None:
        if isinstance(message, proto.Ping):
            self.send({"type": "pong"})
        elif isinstance(message, proto.Subscribe):
            await self._subscribe(message)
        elif isinstance(message, proto.Unsubscribe):
            self._unsubscribe(message.channel)
        elif isinstance(message, proto.Auth):
            await self._reauthenticate(message.token)

    async def _subscribe(self, message: proto.Subscribe) -> None:
        channel = message.channel
        try:
            check_channel(channel)
        except InvalidChannel:
            self.send({"type": "error", "code": "invalid_channel", "channel": channel})
            return
        if channel in self.channels:
            self.send({"type": "subscribed", "channel": channel})
            return
        if len(self.channels) >= self.options.relay_max_channels:
            self.send({"type": "error", "code": "too_many_channels", "channel": channel})
            return
        if not await self.auth.may_join(self.identity, channel):
            # The same answer for "no such channel" and "not yours": ids stay private.
            self.send({"type": "error", "code": "forbidden", "channel": channel})
            return
        self.send({"type": "subscribed", "channel": channel})
        await self.join(channel, message.last_event_id)

    def _unsubscribe(self, channel: str, reason: str | None = None) -> None:
        if channel == f"user:{self.identity.user_id}":
            self.send({"type": "error", "code": "cannot_leave_user_channel", "channel": channel})
            return
        if self.channels.pop(channel, None) is not None:
            self.hub.leave(channel, self)
        self.send({"type": "unsubscribed", "channel": channel, **({"reason": reason} if reason else {})})

    async def _reauthenticate(self, token: str) -> None:
        identity = await self.auth.authenticate(token)
        if identity.user_id != self.identity.user_id:
            raise Close(proto.UNAUTHENTICATED, "a connection belongs to one user")
        role_changed = identity.role != self.identity.role
        self._identity = identity
        self.send({"type": "authenticated", "expires_at": identity.expires_at})
        if role_changed:
            await self._recheck_channels()

    async def _recheck_channels(self) -> None:
        for channel in [c for c in self.channels if not c.startswith("user:")]:
            if not await self.auth.may_join(self.identity, channel):
                self._unsubscribe(channel, reason="forbidden")

    # --- time ----------------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        options = self.options
        beat = options.relay_heartbeat_interval
        # The first beat lands at a random point of the interval: clients that
        # connected together (after a deploy, in a benchmark) must not all be
        # heartbeaten in the same instant. Sessions are re-checked by the
        # process's SessionWatch, all sockets at once.
        next_beat = time.monotonic() + random.uniform(0.1, 1.0) * beat  # noqa: S311 - load spreading, not a secret
        while True:
            now = time.monotonic()
            left = self.identity.expires_at - self.clock()
            if left <= 0:
                raise Close(proto.UNAUTHENTICATED, "the access token expired; reconnect with a fresh one")
            idle = now - self.last_heard
            if idle >= options.relay_idle_timeout:
                raise Close(proto.IDLE_TIMEOUT)
            if now >= next_beat:
                next_beat = now + beat
                self.send({"type": "heartbeat", "at": datetime.datetime.now(datetime.UTC).isoformat()})
                continue
            await asyncio.sleep(max(0.02, min(next_beat - now, left, options.relay_idle_timeout - idle)))


__all__ = ["ChannelState", "Connection"]
