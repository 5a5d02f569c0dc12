"""A lease in Redis that at most one process holds at a time: who sends the beat schedule.

``LeaderLease.hold()`` takes the lease when nobody holds it, renews it when this
holder already does, and answers whether this process holds it now. The lease
lapses ``ttl`` seconds after its holder's last renewal (a killed process simply
stops renewing); a holder that finds another's token in the key has lost it and
says so. Take and renew are one Lua script each, so two contenders never both win.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis

log = logging.getLogger("hearth.beat")

# Take the lease if free, renew it if ours; 1 when we hold it afterwards, 0 when another does.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaderLease:
    def __init__(self, client: redis.Redis, key: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.ttl = ttl
        # Says who holds it (``redis-cli GET``) and is unique per start, so a restarted process
        # on the same host and pid does not mistake its predecessor's lease for its own.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.held: bool | None = None  # not asked yet: the first answer is logged either way
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    def hold(self) -> bool:
        """Take or renew the lease; whether this process holds it. Redis unreachable counts as not held."""
        try:
            held = bool(self._hold(keys=[self.key], args=[self.token, int(self.ttl * 1000)]))
        except redis.RedisError as exc:
            held = False
            log.warning("leader lease unreadable; not leading", extra={"key": self.key, "error": type(exc).__name__})
        if held != self.held:
            log.warning(
                "leader lease taken" if held else "leader lease held elsewhere; standing by",
                extra={"key": self.key, "holder": self.holder() if not held else self.token},
            )
        self.held = held
        return held

    def holder(self) -> str | None:
        """The token of whoever holds the lease now (None when nobody does or Redis is unreachable)."""
        try:
            value = self.client.get(self.key)
        except redis.RedisError:
            return None
        return value.decode() if isinstance(value, bytes) else value

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait for it to lapse."""
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError:
            log.warning("could not release the leader lease; it lapses on its own", extra={"key": self.key})
        self.held = False


__all__ = ["LeaderLease"]
