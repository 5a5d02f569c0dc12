"""Which channels a relay connection may join, beyond its own ``user:{id}``.

Every channel kind has one rule, registered with ``@channel_rule(kind)``: a
function ``(identity, ident, cache) -> bool`` deciding whether the identity may
receive the events of ``{kind}:{ident}``. A kind without a rule is refused.
Rules that read the database run in a thread (``database=True``). ``cache`` is
the relay's ``ChannelCache``, built once by ``relay.app.build_relay``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from models.conversations import ConversationParticipant
from models.db import connection
from models.jobs import Job

if TYPE_CHECKING:
    from relay.auth import Identity


class ChannelCache:
    """What the rules remember between checks, for one relay. Each map holds facts that never
    change (a job's owner; that someone takes part in a conversation, which nobody ever leaves)
    and is emptied whole once it reaches its bound."""

    def __init__(self, *, max_job_owners: int = 50_000, max_participants: int = 50_000):
        self.max_job_owners = max_job_owners
        self.max_participants = max_participants
        self.job_owners: dict[str, str] = {}  # job id → owner id
        self.participants: dict[tuple[str, str], bool] = {}  # (conversation id, user id) → True

    def remember_owner(self, job_id: str, owner: str) -> None:
        if len(self.job_owners) >= self.max_job_owners:
            self.job_owners.clear()
        self.job_owners[job_id] = owner

    def remember_participant(self, conversation_id: str, user_id: str) -> None:
        if len(self.participants) >= self.max_participants:
            self.participants.clear()
        self.participants[(conversation_id, user_id)] = True


# Whether an identity may join a channel of the kind, given the channel's id and the relay's cache.
ChannelRule = Callable[["Identity", str, ChannelCache], bool]
# kind -> (rule, whether the rule reads the database and so runs off the event loop)
CHANNEL_RULES: dict[str, tuple[ChannelRule, bool]] = {}


def channel_rule(kind: str, *, database: bool = False) -> Callable[[ChannelRule], ChannelRule]:
    def register(fn: ChannelRule) -> ChannelRule:
        CHANNEL_RULES[kind] = (fn, database)
        return fn

    return register


@channel_rule("user")
def _own_user_channel(identity: Identity, ident: str, cache: ChannelCache) -> bool:
    return ident == identity.user_id


@channel_rule("job", database=True)
def _job_channel(identity: Identity, ident: str, cache: ChannelCache) -> bool:
    """The job's owner, or whoever may see every job."""
    try:
        job_id = str(uuid.UUID(ident))
    except ValueError:
        return False
    owner = cache.job_owners.get(job_id)
    if owner is None:
        with connection():
            row = Job.select(Job.owner).where(Job.id == job_id).tuples().first()
        if row is None or row[0] is None:
            return identity.can("admin:jobs") and row is not None
        owner = str(row[0])
        cache.remember_owner(job_id, owner)
    return owner == identity.user_id or identity.can("admin:jobs")


@channel_rule("conversation", database=True)
def _conversation_channel(identity: Identity, ident: str, cache: ChannelCache) -> bool:
    """The conversation's participants only; admins read conversations through reports, not live."""
    try:
        key = (str(uuid.UUID(ident)), identity.user_id)
    except ValueError:
        return False
    if key in cache.participants:
        return True
    with connection():
        member = (
            ConversationParticipant.select()
            .where((ConversationParticipant.conversation == key[0]) & (ConversationParticipant.user == key[1]))
            .exists()
        )
    if member:
        cache.remember_participant(*key)
    return member
