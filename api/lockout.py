"""Brute-force protection for login, built so that nobody can lock someone else out.

Three locks, each lasting 1 min after its threshold and doubling with every
further failure up to 1 h:

- **account + client address**: ``pair_threshold`` failures for one email from
  one address lock that email *from that address only*. An attacker guessing
  a password locks themselves out, not the owner logging in from elsewhere.
- **client address**: ``ip_threshold`` failures from one address, whatever the
  emails, lock the address (one machine trying many accounts).
- **account**: when failures for one email come from ``account_addresses``
  distinct addresses (a distributed guess), the email is locked from
  everywhere. The owner then gets an emailed one-time unlock link; redeeming it
  (``grant``) lets the address that redeemed it past the account lock for one
  successful login.

An unknown email counts exactly like a wrong password, so the locks reveal
nothing about which accounts exist. Emails and addresses are stored hashed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

TRACK_SECONDS = 24 * 3600
BASE_LOCK_SECONDS = 60
MAX_LOCK_SECONDS = 3600
# How long an unlock grant waits for its login: the owner clicked the link and logs in next.
GRANT_SECONDS = 15 * 60

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

# KEYS: the account's set of failing addresses, its lock, its "unlock link mailed" marker.
# ARGV: the address digest, tracking seconds, address threshold, base lock, max lock.
# Returns {lock seconds now in force (0: none), 1 when the owner should be mailed an unlock link}.
_ACCOUNT_FAIL = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local over = redis.call('SCARD', KEYS[1]) - tonumber(ARGV[3])
if over < 0 then
  return {0, 0}
end
local lock = math.floor(math.min(tonumber(ARGV[4]) * (2 ^ over), tonumber(ARGV[5])))
if redis.call('TTL', KEYS[2]) < lock then
  redis.call('SET', KEYS[2], '1', 'EX', lock)
end
local mail = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[5])
return {lock, mail and 1 or 0}
"""


@dataclass(frozen=True)
class Failure:
    lock_seconds: int  # the longest lock now in force for this email and address, 0 if none
    mail_unlock_link: bool  # the account lock just started: mail its owner an unlock link


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]  # no raw emails or addresses in Redis


class LoginLockout:
    def __init__(self, redis, prefix: str, *, pair_threshold: int, ip_threshold: int, account_addresses: int):
        self.redis = redis
        self.prefix = f"{prefix}login:"
        self.thresholds = {"pair": pair_threshold, "ip": ip_threshold}
        self.account_addresses = account_addresses
        self._fail = redis.register_script(_FAIL)
        self._account_fail = redis.register_script(_ACCOUNT_FAIL)

    def _subjects(self, email: str, ip: str) -> dict[str, str]:
        account, address = _digest(email), _digest(ip)
        return {"pair": f"{account}:{address}", "ip": address, "acct": account}

    def _grant_key(self, email: str, ip: str) -> str:
        return f"{self.prefix}grant:{self._subjects(email, ip)['pair']}"

    def locked_for(self, email: str, ip: str) -> int:
        """Seconds until this email may try to log in again from this address (0 when not locked)."""
        subjects = self._subjects(email, ip)
        pipe = self.redis.pipeline(transaction=False)
        for kind in ("pair", "ip", "acct"):
            pipe.ttl(f"{self.prefix}lock:{kind}:{subjects[kind]}")
        pipe.exists(self._grant_key(email, ip))
        pair, address, account, granted = pipe.execute()
        return max(0, int(pair), int(address), 0 if granted else int(account))

    def failed(self, email: str, ip: str) -> Failure:
        """Record a failed login of ``email`` from ``ip``."""
        subjects = self._subjects(email, ip)
        locks = []
        for kind in ("pair", "ip"):
            locks.append(
                int(
                    self._fail(
                        keys=[
                            f"{self.prefix}fail:{kind}:{subjects[kind]}",
                            f"{self.prefix}lock:{kind}:{subjects[kind]}",
                        ],
                        args=[TRACK_SECONDS, self.thresholds[kind], BASE_LOCK_SECONDS, MAX_LOCK_SECONDS],
                    )
                )
            )
        account = subjects["acct"]
        lock, mail = self._account_fail(
            keys=[
                f"{self.prefix}addrs:{account}",
                f"{self.prefix}lock:acct:{account}",
                f"{self.prefix}unlock-mailed:{account}",
            ],
            args=[_digest(ip), TRACK_SECONDS, self.account_addresses, BASE_LOCK_SECONDS, MAX_LOCK_SECONDS],
        )
        return Failure(max(*locks, int(lock)), bool(mail))

    def succeeded(self, email: str, ip: str) -> None:
        """A correct password: forget this address's failures for the email and use up its unlock grant.

        The address counter stays: one valid login must not unlock an address that
        is trying thousands of other accounts. The account's record of failing
        addresses stays too: those addresses were not the owner.
        """
        pair = self._subjects(email, ip)["pair"]
        self.redis.delete(
            f"{self.prefix}fail:pair:{pair}", f"{self.prefix}lock:pair:{pair}", self._grant_key(email, ip)
        )

    def grant(self, email: str, ip: str) -> None:
        """Let ``ip`` past the account-wide lock of ``email`` for its next successful login (an unlock link)."""
        self.redis.set(self._grant_key(email, ip), "1", ex=GRANT_SECONDS)
