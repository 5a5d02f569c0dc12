"""Who is on a relay connection, whether their session still lives, and which channels they may join.

Tokens are the API's access tokens, verified by the same ``TokenIssuer``.
Session state comes from the same Redis cache the API reads (``sess:{sid}`` →
role, or ``-`` once revoked), rebuilt from PostgreSQL on a miss.

Every channel kind has one rule, registered with ``@channel_rule(kind)``: a
function ``(identity, ident) -> bool`` deciding whether the identity may
receive the events of ``{kind}:{ident}``. A kind without a rule is refused.
Rules that read the database run in a thread (``database=True``).
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.relay_protocol import SESSION_ENDED, TRY_AGAIN_LATER, UNAUTHENTICATED, Close
from models.conversations import ConversationParticipant
from models.db import TRANSIENT_ERRORS, connection
from models.jobs import Job
from models.permissions import has_permission
from models.session_cache import REVOKED, SessionCache
from services.tokens import InvalidToken, TokenIssuer

CHANNEL_RULES: dict[str, tuple[object, bool]] = {}


def channel_rule(kind: str, *, database: bool = False):
    def register(fn):
        CHANNEL_RULES[kind] = (fn, database)
        return fn
    return register


@dataclass
class Identity:
    user_id: str
    role: str
    session_id: str
    expires_at: int

    def can(self, permission: str) -> bool:
        return has_permission(self.role, permission)


@channel_rule("user")
def _own_user_channel(identity: Identity, ident: str) -> bool:
    return ident == identity.user_id


_JOB_OWNERS: dict[str, str] = {}  # job id → owner id; owners never change
_JOB_OWNERS_MAX = 50_000


@channel_rule("job", database=True)
def _job_channel(identity: Identity, ident: str) -> bool:
    """The job's owner, or whoever may see every job."""
    try:
        job_id = str(uuid.UUID(ident))
    except ValueError:
        return False
    owner = _JOB_OWNERS.get(job_id)
    if owner is None:
        with connection():
            row = Job.select(Job.owner).where(Job.id == job_id).tuples().first()
        if row is None or row[0] is None:
            return identity.can("admin:jobs") and row is not None
        owner = str(row[0])
        if len(_JOB_OWNERS) >= _JOB_OWNERS_MAX:
            _JOB_OWNERS.clear()
        _JOB_OWNERS[job_id] = owner
    return owner == identity.user_id or identity.can("admin:jobs")


_PARTICIPANTS: dict[tuple[str, str], bool] = {}  # (conversation id, user id) → True; nobody ever leaves one
_PARTICIPANTS_MAX = 50_000


@channel_rule("conversation", database=True)
def _conversation_channel(identity: Identity, ident: str) -> bool:
    """The conversation's participants only; admins read conversations through reports, not live."""
    try:
        key = (str(uuid.UUID(ident)), identity.user_id)
    except ValueError:
        return False
    if key in _PARTICIPANTS:
        return True
    with connection():
        member = ConversationParticipant.select().where((ConversationParticipant.conversation == key[0])
                                                        & (ConversationParticipant.user == key[1])).exists()
    if member:
        if len(_PARTICIPANTS) >= _PARTICIPANTS_MAX:
            _PARTICIPANTS.clear()
        _PARTICIPANTS[key] = True
    return member


class RelayAuth:
    def __init__(self, tokens: TokenIssuer, redis, sessions: SessionCache, *, blocking=asyncio.to_thread):
        self.tokens = tokens
        self.redis = redis  # redis.asyncio client
        self.sessions = sessions  # synchronous cache, used to rebuild an entry from the database
        self.blocking = blocking

    async def authenticate(self, token: str) -> Identity:
        """Verify the token and its session; raises ``Close`` (4401, 4403 or 1013)."""
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            raise Close(UNAUTHENTICATED, "the access token is invalid or expired") from None
        state = await self.session_state(claims.session_id)
        if state == REVOKED:
            raise Close(SESSION_ENDED, "this session has ended; log in again")
        return Identity(user_id=claims.user_id, role=state.decode(), session_id=claims.session_id,
                        expires_at=claims.expires_at)

    async def session_state(self, session_id: str) -> bytes:
        """The cached role of a live session, or ``REVOKED``; raises ``Close(1013)`` when stores are down."""
        try:
            state = await self.redis.get(self.sessions.key(session_id))
            if state is None:
                state = await self.blocking(self._load_session, session_id)
        except (OSError, RedisConnectionError, RedisTimeoutError, *TRANSIENT_ERRORS) as exc:
            raise Close(TRY_AGAIN_LATER, "session store unavailable") from exc
        return state

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
            return await self.blocking(check, identity, ident)
        return check(identity, ident)
