"""Rate limits shared by every API process through Redis.

A fixed window per (bucket, client) counted by one Lua script, so a check is a
single round trip, which also reads whatever other keys the request needs
(the caller's session state, a cached profile). Good enough for abuse
protection; the ``RateLimit-*`` headers tell clients where they stand.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from redis.exceptions import ConnectionError, NoScriptError, TimeoutError

_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if #KEYS > 1 then return {count, redis.call('MGET', unpack(KEYS, 2))} end
return {count, {}}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window resets
    values: list = field(default_factory=list, compare=False)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


HOT_CLIENT_NAME = "hearth-api-hot"  # shown by CLIENT LIST, with the process id


class _HotConnection(threading.local):
    """One Redis connection per thread for the command every request sends.

    redis-py's general path (pool checkout, retry wrapper, instrumentation)
    costs about as much as the round trip itself; this call is on every
    request, so it talks to its own connection directly. A broken connection
    is dropped and the error raised (the API answers 503); the next request
    opens a new one.
    """

    def __init__(self, pool):
        self.pool = pool
        self.conn = None
        self.pid = None

    def call(self, *args):
        if self.conn is None or self.pid != os.getpid():
            self.pid = os.getpid()
            self.conn = self.pool.connection_class(
                **{**self.pool.connection_kwargs, "client_name": f"{HOT_CLIENT_NAME}-{self.pid}"}
            )
        try:
            self.conn.send_command(*args)
            return self.conn.read_response()
        except (ConnectionError, TimeoutError, OSError):
            self.conn.disconnect()
            self.conn = None
            raise


class RateLimiter:
    def __init__(self, redis, prefix: str, clock=time.time):
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._script = redis.register_script(_SCRIPT)
        self._hot = _HotConnection(redis.connection_pool)

    def _hit(self, keys: list, args: list):
        try:
            return self._hot.call("EVALSHA", self._script.sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted or its script cache was flushed
            return self._hot.call("EVAL", _SCRIPT, len(keys), *keys, *args)

    def hit(self, bucket: str, client: str, limit: int, window: int, *, read=()) -> Decision:
        """Count one request of ``client`` against ``limit`` per ``window`` seconds.

        ``read``: further keys whose values come back, in order, as ``Decision.values``.
        """
        now = int(self.clock())
        window_start = now - now % window
        key = f"{self.prefix}rl:{bucket}:{client}:{window_start}"
        count, values = self._hit([key, *read], [window + 1])
        count = int(count)
        reset = window_start + window - now
        return Decision(
            allowed=count <= limit, limit=limit, remaining=max(0, limit - count), reset=reset, values=list(values)
        )
