"""Which channels a relay connection may join, beyond its own ``user:{id}``.

Every channel kind has one rule, registered with ``@channel_rule(kind)``: a
function ``(identity, ident) -> bool`` deciding whether the identity may
receive the events of ``{kind}:{ident}``. A kind without a rule is refused.
Rules that read the database run in a thread (``database=True``).
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

# Whether an identity may join a channel of the kind, given the channel's id.
ChannelRule = Callable[["Identity", str], bool]
# kind -> (rule, whether the rule reads the database and so runs off the event loop)
CHANNEL_RULES: dict[str, tuple[ChannelRule, bool]] = {}


def channel_rule(kind: str, *, database: bool = False) -> Callable[[ChannelRule], ChannelRule]:
    def register(fn: ChannelRule) -> ChannelRule:
        CHANNEL_RULES[kind] = (fn, database)
        return fn

    return register


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
        member = (
            ConversationParticipant.select()
            .where((ConversationParticipant.conversation == key[0]) & (ConversationParticipant.user == key[1]))
            .exists()
        )
    if member:
        if len(_PARTICIPANTS) >= _PARTICIPANTS_MAX:
            _PARTICIPANTS.clear()
        _PARTICIPANTS[key] = True
    return member
