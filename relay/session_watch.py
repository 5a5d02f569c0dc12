"""Re-reading the sessions of a relay's sockets, for all of them at once.

Each socket's session can end (logout, revocation, a password change) or
change role while the socket stays open. Every ``RELAY_HEARTBEAT_INTERVAL``
one sweep per relay process reads the cached state of every open socket's
session with ``MGET`` (``CHUNK`` keys a command) and tells each connection
what it found (``Connection.session_seen``): a revoked session closes its
socket with 4403, a changed role re-checks its channels. With 10,000 sockets
that is ten Redis commands per interval, where one ``GET`` per socket cost
400 commands a second and showed in the relay's profile.

A session missing from the cache is rebuilt from PostgreSQL
(``RelayAuth.session_states``). When Redis cannot be read the sweep says so in
the log and tries again at the next interval: the sockets stay open, as they
do for any Redis outage (the hub resubscribes and catches them up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from relay.protocol import Close

log = logging.getLogger("hearth.relay")
CHUNK = 1000


class SessionWatch:
    def __init__(self, auth, interval: float):
        self.auth = auth
        self.interval = interval
        self.connections: set = set()
        self._task: asyncio.Task | None = None

    def add(self, conn) -> None:
        self.connections.add(conn)

    def discard(self, conn) -> None:
        self.connections.discard(conn)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-session-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Close:
                log.warning("the session sweep could not read the session store; trying again next interval")
            except Exception:
                log.exception("the session sweep failed")

    async def sweep(self) -> int:
        """Read every open socket's session once; how many sockets were checked."""
        connections = [conn for conn in self.connections if conn.authenticated]
        for start in range(0, len(connections), CHUNK):
            part = connections[start : start + CHUNK]
            states = await self.auth.session_states([conn.identity.session_id for conn in part])
            for conn, state in zip(part, states, strict=True):
                conn.session_seen(state)
        return len(connections)


__all__ = ["CHUNK", "SessionWatch"]
