"""Rate limits shared by every API process through Redis.

A fixed window per (bucket, client) counted by one Lua script, so a check is a
single round trip, which also reads whatever other keys the request needs
(the caller's session state, a cached profile). Good enough for abuse
protection; the ``RateLimit-*`` headers tell clients where they stand.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

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


class RateLimiter:
    def __init__(self, redis, prefix: str, clock=time.time):
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._hit = redis.register_script(_SCRIPT)

    def hit(self, bucket: str, client: str, limit: int, window: int, *, read=()) -> Decision:
        """Count one request of ``client`` against ``limit`` per ``window`` seconds.

        ``read``: further keys whose values come back, in order, as ``Decision.values``.
        """
        now = int(self.clock())
        window_start = now - now % window
        key = f"{self.prefix}rl:{bucket}:{client}:{window_start}"
        count, values = self._hit(keys=[key, *read], args=[window + 1], client=None)
        count = int(count)
        reset = window_start + window - now
        return Decision(allowed=count <= limit, limit=limit, remaining=max(0, limit - count), reset=reset,
                        values=list(values))
