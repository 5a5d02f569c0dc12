"""The Redis cache of session state: ``sess:{sid}`` → the user's role, or ``-`` once the session ended.

The API and the relay read it on every authenticated request or heartbeat;
PostgreSQL stays the truth. The cache is rebuilt from the database on a miss,
so losing Redis never lets a revoked session back in (a miss reads the
database). Revocation and role changes write the database first and then
write the new state into the cache: a tombstone (``-``) for an ended session,
the new role for a live one. A rebuild only fills an empty entry (``SET NX``),
so a request that read the database just before such a change can never
overwrite its result with the old state. The signed-in user's profile is
cached beside it under the same rule.
"""

from __future__ import annotations

import msgspec

from models.accounts import AuthSession, User
from models.base import utcnow

REVOKED = b"-"
PROFILE_CACHE_SECONDS = 300
# A tombstone is final: a role change must not bring a session revoked meanwhile back.
_SET_ROLE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) ~= ARGV[1] then redis.call('SET', key, ARGV[2], 'EX', ARGV[3]) end
end
return #KEYS
"""


class SessionCache:
    """``sess:{sid}`` → the user's role while the session is alive, ``-`` once it is not."""

    def __init__(self, redis, prefix: str, ttl: int):
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl
        self._set_role = redis.register_script(_SET_ROLE)

    def key(self, session_id: str) -> str:
        return f"{self.prefix}sess:{session_id}"

    def profile_key(self, user_id: str) -> str:
        return f"{self.prefix}profile:{user_id}"

    def load(self, session_id: str) -> bytes:
        """Read the session's state from PostgreSQL and cache it; returns the state that holds."""
        return self.store(session_id, self.read(session_id))

    def read(self, session_id: str) -> bytes:
        """The session's state as PostgreSQL has it: the user's role, or ``REVOKED``."""
        row = (
            AuthSession.select(AuthSession.revoked_at, AuthSession.expires_at, User.role, User.banned_at)
            .join(User)
            .where(AuthSession.id == session_id)
            .tuples()
            .first()
        )
        if row is None:
            return REVOKED
        revoked_at, expires_at, role, banned_at = row
        alive = revoked_at is None and banned_at is None and expires_at > utcnow()
        return role.encode() if alive else REVOKED

    def store(self, session_id: str, state: bytes) -> bytes:
        """Cache a state read from the database, unless a newer one was written meanwhile.

        Returns the cached state, which wins: it was written after a change committed.
        """
        key = self.key(session_id)
        if self.redis.set(key, state, ex=self.ttl, nx=True):
            return state
        current = self.redis.get(key)
        return current if current is not None else state

    def mark_revoked(self, session_ids) -> None:
        """Record sessions the database has just revoked (a tombstone, not a deletion: see above)."""
        keys = [self.key(str(sid)) for sid in session_ids]
        if keys:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, REVOKED, ex=self.ttl)
            pipe.execute()

    def set_role(self, session_ids, role: str) -> None:
        """Record a role change the database has just committed, sparing revoked sessions."""
        keys = [self.key(str(sid)) for sid in session_ids]
        if keys:
            self._set_role(keys=keys, args=[REVOKED, role, self.ttl])

    def fill_profile(self, user_id, body: bytes) -> None:
        """Cache a profile read from the database, unless a change wrote a newer one meanwhile."""
        self.redis.set(self.profile_key(str(user_id)), body, ex=PROFILE_CACHE_SECONDS, nx=True)

    def store_profile(self, user) -> None:
        """Cache the profile of ``user`` as just committed (after every change to it).

        Writing the new value, rather than deleting the old one, means a slower
        request that read the row before the change cannot put the old profile
        back (its fill only sets an empty entry).
        """
        self.redis.set(self.profile_key(str(user.id)), msgspec.json.encode(user.profile()), ex=PROFILE_CACHE_SECONDS)
