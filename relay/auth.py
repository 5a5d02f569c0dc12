"""Who is on a relay connection, and whether their session still lives.

Tokens are the API's access tokens, verified by the same ``TokenIssuer``
(``services.tokens``). Session state comes from the same Redis cache the API
reads (``sess:{sid}`` → role, or ``-`` once revoked), rebuilt from PostgreSQL
on a miss (``models.session_cache``). Which channels an identity may join is
``relay.channels``'s rule per channel kind, with the relay's ``ChannelCache``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, Protocol, TypeVar, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from models.db import TRANSIENT_ERRORS, connection
from models.permissions import has_permission
from models.session_cache import REVOKED, SessionCache
from relay.channels import CHANNEL_RULES, ChannelCache
from relay.protocol import MFA_REQUIRED, SESSION_ENDED, TRY_AGAIN_LATER, UNAUTHENTICATED, Close
from services.tokens import InvalidToken, TokenIssuer

P = ParamSpec("P")
R = TypeVar("R")


class Blocking(Protocol):
    """Runs a blocking call off the event loop: ``asyncio.to_thread``, or the tests' stand-in."""

    def __call__(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]: ...


@dataclass
class Identity:
    user_id: str
    role: str
    session_id: str
    expires_at: int

    def can(self, permission: str) -> bool:
        return has_permission(self.role, permission)


class RelayAuth:
    def __init__(
        self,
        tokens: TokenIssuer,
        redis: Redis,
        sessions: SessionCache,
        channels: ChannelCache,
        *,
        blocking: Blocking = asyncio.to_thread,
    ):
        self.tokens = tokens
        self.redis = redis
        self.sessions = sessions  # synchronous cache, used to rebuild an entry from the database
        self.channels = channels  # what the channel rules remember, for this relay only
        self.blocking = blocking

    async def authenticate(self, token: str) -> Identity:
        """Verify the token and its session; raises ``Close`` (4401, 4403 or 1013)."""
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            raise Close(UNAUTHENTICATED, "the access token is invalid or expired") from None
        if claims.mfa_pending:  # only a password so far on a two-factor account: nothing to see yet
            raise Close(MFA_REQUIRED, "verify your second factor first, then connect with the new token")
        state = await self.session_state(claims.session_id)
        if state == REVOKED:
            raise Close(SESSION_ENDED, "this session has ended; log in again")
        return Identity(
            user_id=claims.user_id, role=state.decode(), session_id=claims.session_id, expires_at=claims.expires_at
        )

    async def session_state(self, session_id: str) -> bytes:
        """The cached role of a live session, or ``REVOKED``; raises ``Close(1013)`` when stores are down."""
        return (await self.session_states([session_id]))[0]

    async def session_states(self, session_ids: list[str]) -> list[bytes]:
        """``session_state`` of each id, in order, in one ``MGET`` (sessions missing from the cache are rebuilt)."""
        try:
            # The client leaves responses undecoded, so a value is bytes.
            states = cast(list[bytes | None], await self.redis.mget([self.sessions.key(sid) for sid in session_ids]))
            return [
                state if state is not None else await self.blocking(self._load_session, sid)
                for sid, state in zip(session_ids, states, strict=True)
            ]
        except (OSError, RedisConnectionError, RedisTimeoutError, *TRANSIENT_ERRORS) as exc:
            raise Close(TRY_AGAIN_LATER, "session store unavailable") from exc

    def _load_session(self, session_id: str) -> bytes:
        with connection():
            return self.sessions.load(session_id)

    async def may_join(self, identity: Identity, channel: str) -> bool:
        kind, _, ident = channel.partition(":")
        rule = CHANNEL_RULES.get(kind)
        if rule is None:
            return False
        check, database = rule
        if database:
            return await self.blocking(check, identity, ident, self.channels)
        return check(identity, ident, self.channels)
