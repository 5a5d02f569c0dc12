"""Brute-force protection for login: failure counters per account and per client IP.

After ``threshold`` failures within the tracking period, every further failure
locks the key for twice as long as the last lock (1 min, 2, 4, ... up to 1 h).
An unknown email counts exactly like a wrong password, so the lockout reveals
nothing about which accounts exist.
"""
from __future__ import annotations

import hashlib

TRACK_SECONDS = 24 * 3600
BASE_LOCK_SECONDS = 60
MAX_LOCK_SECONDS = 3600

_FAIL = """
local fails = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local over = fails - tonumber(ARGV[2])
if over >= 0 then
  local lock = math.min(tonumber(ARGV[3]) * (2 ^ over), tonumber(ARGV[4]))
  redis.call('SET', KEYS[2], '1', 'EX', math.floor(lock))
  return math.floor(lock)
end
return 0
"""


class LoginLockout:
    def __init__(self, redis, prefix: str, *, account_threshold: int, ip_threshold: int):
        self.redis = redis
        self.prefix = prefix
        self.thresholds = {"acct": account_threshold, "ip": ip_threshold}
        self._fail = redis.register_script(_FAIL)

    def _keys(self, kind: str, value: str) -> tuple[str, str]:
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no raw emails in Redis
        return f"{self.prefix}login:fail:{kind}:{digest}", f"{self.prefix}login:lock:{kind}:{digest}"

    def locked_for(self, email: str, ip: str) -> int:
        """Seconds until login may be tried again for this email or IP (0 when not locked)."""
        pipe = self.redis.pipeline(transaction=False)
        for kind, value in (("acct", email), ("ip", ip)):
            pipe.ttl(self._keys(kind, value)[1])
        return max(0, *[int(ttl) for ttl in pipe.execute()])

    def failed(self, email: str, ip: str) -> int:
        """Record a failure; returns the lock (seconds) now in force, 0 if none."""
        locks = []
        for kind, value in (("acct", email), ("ip", ip)):
            fail_key, lock_key = self._keys(kind, value)
            locks.append(int(self._fail(keys=[fail_key, lock_key], args=[
                TRACK_SECONDS, self.thresholds[kind], BASE_LOCK_SECONDS, MAX_LOCK_SECONDS])))
        return max(locks)

    def succeeded(self, email: str) -> None:
        # Only the account's counter resets: one valid login must not unlock an IP
        # that is trying thousands of other accounts.
        self.redis.delete(*self._keys("acct", email))
