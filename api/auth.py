"""Who is calling: bearer-token authentication backed by a Redis session cache.

The access token proves identity; the session cache says whether that session
is still alive and what the user's current role is. The cache is rebuilt from
PostgreSQL on a miss, so losing Redis never lets a revoked session back in for
longer than it takes to rebuild an entry (it never does: a miss reads the
database). Revocation and role changes write the database first and then
drop the cached entry.
"""
from __future__ import annotations

from dataclasses import dataclass

from api.errors import forbidden, unauthorized
from api.tokens import InvalidToken, TokenIssuer
from models.accounts import AuthSession, User
from models.base import utcnow
from models.permissions import has_permission

REVOKED = b"-"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str
    session_id: str
    token_expires_at: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can(self, permission: str) -> bool:
        return has_permission(self.role, permission)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise forbidden()


class SessionCache:
    """``sess:{sid}`` → the user's role while the session is alive, ``-`` once it is not."""

    def __init__(self, redis, prefix: str, ttl: int):
        self.redis = redis
        self.prefix = prefix
        self.ttl = ttl

    def key(self, session_id: str) -> str:
        return f"{self.prefix}sess:{session_id}"

    def profile_key(self, user_id: str) -> str:
        return f"{self.prefix}profile:{user_id}"

    def load(self, session_id: str) -> bytes:
        """Read the session's state from PostgreSQL and cache it."""
        row = (AuthSession.select(AuthSession.revoked_at, AuthSession.expires_at,
                                  User.role, User.banned_at)
               .join(User).where(AuthSession.id == session_id).tuples().first())
        if row is None:
            state = REVOKED
        else:
            revoked_at, expires_at, role, banned_at = row
            alive = revoked_at is None and banned_at is None and expires_at > utcnow()
            state = role.encode() if alive else REVOKED
        self.redis.set(self.key(session_id), state, ex=self.ttl)
        return state

    def forget_sessions(self, session_ids) -> None:
        """Drop cached states after the database changed them (revocation, role change, ban)."""
        keys = [self.key(str(sid)) for sid in session_ids]
        if keys:
            self.redis.delete(*keys)

    def forget_profile(self, user_id) -> None:
        self.redis.delete(self.profile_key(str(user_id)))


class Authenticator:
    def __init__(self, tokens: TokenIssuer, sessions: SessionCache):
        self.tokens = tokens
        self.sessions = sessions

    @staticmethod
    def bearer(req) -> str | None:
        header = req.get_header("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("The Authorization header must be 'Bearer <access token>'.")
        return token.strip()

    def authenticate(self, token: str, *, prefetch=None) -> tuple[Principal, list]:
        """Verify the token and its session; returns the principal and prefetched values.

        ``prefetch(user_id)`` names further Redis keys to read in the same round
        trip as the session state (``GET /v1/me`` reads the cached profile so).
        """
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            raise unauthorized("The access token is invalid or expired.") from None
        extra_keys = prefetch(self.sessions, claims.user_id) if prefetch else ()
        values = self.sessions.redis.mget([self.sessions.key(claims.session_id), *extra_keys])
        state = values[0] if values[0] is not None else self.sessions.load(claims.session_id)
        if state == REVOKED:
            raise unauthorized("This session has ended; log in again.")
        principal = Principal(user_id=claims.user_id, role=state.decode(),
                              session_id=claims.session_id, token_expires_at=claims.expires_at)
        return principal, values[1:]
