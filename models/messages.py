"""Messages in conversations: starting one, posting, read positions, and what an attachment is shared with.

Every message goes through ``post_message``, which also checks that the
sender takes part, in the same query. In the caller's transaction it
inserts the message (a repeated ``client_id`` of the same sender returns the
original and writes nothing), moves the conversation's last message and the
sender's own read position, and raises one ``message.received`` notification
per other participant and unread streak: the notification's dedupe key holds
the recipient's read position, so until they read, further messages fold
into the one notification; once they read, the next message starts a new one.
The returned fan-out jobs are submitted when the caller's transaction commits.

Pages of messages and the views the API shows of messages and conversations
are in ``models/message_views.py``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from peewee import SQL, Expression, fn

from models.base import utcnow
from models.conversations import Conversation, ConversationParticipant, Message
from models.db import db
from models.jobs import Job
from models.notifications import notify
from models.properties import Property
from models.uploads import Upload

# Uploads a message may carry: attachments, and documents (a pre-approval letter, a disclosure) already
# uploaded as such. Avatars and listing photos are not sent around; upload the file as an attachment.
ATTACHABLE_PURPOSES = ("attachment", "document")
NOTIFICATION_TYPE = "message.received"
PREVIEW_CHARS = 140


class MessagingError(Exception):
    """A message the conversation's rules refuse; the API maps each kind to its answer."""


class OwnListing(MessagingError):
    """The caller is the listing's owner or agent: they answer conversations, they do not start them."""


class Blocked(MessagingError):
    """The sender blocked another participant, or was blocked by one."""


class InvalidAttachments(MessagingError):
    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = errors  # [(index in the request, message)]
        super().__init__("; ".join(f"attachments[{i}]: {message}" for i, message in errors))


@dataclass
class Posted:
    message: Message
    created: bool
    jobs: list[Job] = field(default_factory=list)


def open_conversation(listing: Property, buyer_id) -> tuple[Conversation, bool]:
    """The conversation of ``buyer_id`` about ``listing``, created with its participants if new.

    ``(conversation, created)``. Raises ``OwnListing`` for the listing's own
    people. Two requests racing to start the same conversation get the same one
    (the unique index on (listing, buyer) decides).
    """
    buyer_id = str(buyer_id)
    people = listing.people()
    if buyer_id in {user_id for user_id, _ in people}:
        raise OwnListing()
    inserted = list(
        Conversation.insert(property=listing.id, buyer=buyer_id, created_at=utcnow())
        .on_conflict_ignore()
        .returning(Conversation.id)
        .execute()
    )
    if not inserted:
        return Conversation.get((Conversation.property == listing.id) & (Conversation.buyer == buyer_id)), False
    conversation_id = inserted[0].id
    ConversationParticipant.insert_many(
        [{"conversation": conversation_id, "user": buyer_id, "role": "buyer"}]
        + [{"conversation": conversation_id, "user": user_id, "role": role} for user_id, role in people]
    ).execute()
    return Conversation.get_by_id(conversation_id), True


def find_for(conversation_id, user_id) -> Conversation | None:
    """The conversation if ``user_id`` takes part in it; None otherwise (whether or not it exists)."""
    return (
        Conversation.select()
        .join(ConversationParticipant)
        .where((Conversation.id == conversation_id) & (ConversationParticipant.user == user_id))
        .first()
    )


def attachment_errors(sender_id, upload_ids) -> list[tuple[int, str]]:
    """``[(index, message)]`` for each id that is not a clean, attachable upload of the sender.

    Someone else's upload reads exactly like one that does not exist.
    """
    if not upload_ids:
        return []
    rows = {
        row.id: row
        for row in Upload.select(Upload.id, Upload.status, Upload.purpose).where(
            Upload.id.in_(list(upload_ids)) & (Upload.owner == sender_id)
        )
    }
    errors = []
    for index, upload_id in enumerate(upload_ids):
        upload = rows.get(upload_id)
        if upload is None:
            errors.append((index, "no such upload of yours"))
        elif upload.purpose not in ATTACHABLE_PURPOSES:
            errors.append((index, f"a {upload.purpose} cannot be attached; upload the file as an attachment"))
        elif upload.status != "clean":
            errors.append(
                (index, f"the upload is {upload.status}; only files whose scan found them clean can be attached")
            )
    return errors


# A post runs two statements of its own, both hand-written: building them through the query builder cost
# more CPU than PostgreSQL spent running them, and every message pays it. The first reads all a post
# needs, one row per participant: the listing, the sender's name, a message the sender already sent
# with the same client_id, each participant's read position, and whether a block stands between the
# sender and them. Scalar subqueries rather than joins: PostgreSQL plans them in a fraction of the time
# (planning the joined form took longer than running it).
_POST_CONTEXT = """
SELECT p.user_id, p.last_read_message_id,
       EXISTS (SELECT 1 FROM user_blocks b
               WHERE (b.blocker_id = %(sender)s AND b.blocked_id = p.user_id)
                  OR (b.blocked_id = %(sender)s AND b.blocker_id = p.user_id)),
       (SELECT property_id FROM conversations WHERE id = %(conversation)s),
       (SELECT full_name FROM users WHERE id = %(sender)s),
       (SELECT id FROM messages
        WHERE conversation_id = %(conversation)s AND sender_id = %(sender)s AND client_id = %(client_id)s)
FROM conversation_participants p
WHERE p.conversation_id = %(conversation)s
"""
# The values both writes below are about: the conversation, the reader (the sender, when posting), the
# time, and the notification type their read position settles.
_ARGS = "args AS (SELECT %s::uuid AS conversation, %s::uuid AS reader, %s::timestamptz AS now, %s::text AS type)"
# Moving the reader's position forward to ``message.id`` (never back) and marking read their
# ``message.received`` notifications it now covers (a notification names the first message of its
# unread streak): shared by the post (the sender has read what they wrote) and ``mark_read``.
_ADVANCE_READ = """
own_read AS (
    UPDATE conversation_participants p SET last_read_message_id = message.id, last_read_at = args.now
    FROM message, args
    WHERE p.conversation_id = args.conversation AND p.user_id = args.reader AND p.last_read_message_id < message.id
    RETURNING p.last_read_message_id AS id
), own_notifications AS (
    UPDATE notifications n SET read_at = args.now
    FROM own_read, args
    WHERE n.user_id = args.reader AND n.type = args.type AND n.read_at IS NULL
      AND n.data->>'conversation_id' = args.conversation::text AND (n.data->>'message_id')::bigint <= own_read.id
)
"""
# The second statement of a post writes it: the message (nothing when the same client_id, sent
# concurrently, committed first), the conversation's last message (messages numbered by one sequence
# may commit out of order: never backwards), and the sender's own read position.
_POST_WRITE = (
    "WITH "  # noqa: S608 - joins this module's constant SQL; every value is a %s parameter
    + _ARGS
    + """, message AS (
    INSERT INTO messages (conversation_id, sender_id, body, attachments, client_id, created_at)
    SELECT args.conversation, args.reader, %s, %s::uuid[], %s, args.now FROM args
    ON CONFLICT DO NOTHING
    RETURNING *
), last_message AS (
    UPDATE conversations c SET last_message_id = message.id, last_message_at = message.created_at
    FROM message
    WHERE c.id = message.conversation_id AND (c.last_message_id IS NULL OR c.last_message_id < message.id)
), """
    + _ADVANCE_READ
    + "SELECT * FROM message"
)
# ``mark_read``: the same move, to a position given by id.
_MARK_READ = (
    "WITH "  # noqa: S608 - joins this module's constant SQL; every value is a %s parameter
    + _ARGS
    + ", message AS (SELECT %s::bigint AS id), "
    + _ADVANCE_READ
    + "SELECT count(*) FROM own_read"
)


@dataclass
class _PostContext:
    takes_part: bool
    property_id: object
    sender_name: str | None
    original_id: int | None
    others: list[tuple[object, int, bool]]  # (user_id, last_read_message_id, blocked either way)


def _post_context(conversation_id, sender_id: str, client_id: str | None) -> _PostContext | None:
    """None when the conversation has no participants (it does not exist)."""
    rows = db.execute_sql(
        _POST_CONTEXT, {"sender": sender_id, "conversation": conversation_id, "client_id": client_id}
    ).fetchall()
    if not rows:
        return None
    sender = uuid.UUID(sender_id)
    property_id, sender_name, original_id = rows[0][3:]
    return _PostContext(
        any(row[0] == sender for row in rows),
        property_id,
        sender_name,
        original_id,
        [row[:3] for row in rows if row[0] != sender],
    )


def post_message(conversation_id, sender_id, body: str, attachments=(), client_id: str | None = None) -> Posted | None:
    """Post ``body`` (already stripped) in the conversation as ``sender_id``.

    None, with nothing written, unless the sender takes part (checked in the
    same query that reads what the post needs). Raises ``Blocked`` or
    ``InvalidAttachments``. A repeated ``client_id`` of the same sender
    returns the original message (``created`` False) before anything else is
    checked, and writes nothing.
    """
    sender_id = str(sender_id)
    context = _post_context(conversation_id, sender_id, client_id)
    if context is None or not context.takes_part:
        return None
    if context.original_id is not None:
        return Posted(_by_client_id(conversation_id, sender_id, client_id), False)
    if any(blocked for _, _, blocked in context.others):
        raise Blocked()
    attachments = list(dict.fromkeys(attachments))
    errors = attachment_errors(sender_id, attachments)
    if errors:
        raise InvalidAttachments(errors)
    rows = list(
        Message.raw(
            _POST_WRITE,
            str(conversation_id),
            sender_id,
            utcnow(),
            NOTIFICATION_TYPE,
            body,
            [str(a) for a in attachments],
            client_id,
        )
    )
    if not rows:  # the same client_id, sent concurrently, committed first
        return Posted(_by_client_id(conversation_id, sender_id, client_id), False)
    message = rows[0]
    jobs = []
    for recipient_id, last_read, _ in context.others:
        job = notify(
            recipient_id,
            NOTIFICATION_TYPE,
            title=f"New message from {context.sender_name}",
            body=body[:PREVIEW_CHARS],
            data={
                "conversation_id": str(conversation_id),
                "message_id": message.id,
                "property_id": str(context.property_id),
            },
            dedupe_key=f"{NOTIFICATION_TYPE}:{conversation_id}:{recipient_id}:{last_read}",
        )
        if job is not None:
            jobs.append(job)
    return Posted(message, True, jobs)


def _by_client_id(conversation_id, sender_id, client_id) -> Message | None:
    return Message.get_or_none(
        (Message.conversation == conversation_id) & (Message.sender == sender_id) & (Message.client_id == client_id)
    )


@dataclass
class ReadState:
    last_read_message_id: int
    unread_count: int
    moved: bool


def mark_read(conversation: Conversation, user_id, message_id: int | None = None) -> ReadState:
    """Move ``user_id``'s read position forward: to ``message_id`` capped at the last message, or to the last."""
    last = Conversation.select(Conversation.last_message_id).where(Conversation.id == conversation.id).scalar() or 0
    target = last if message_id is None else min(message_id, last)
    moved = (
        bool(target)
        and db.execute_sql(
            _MARK_READ, (str(conversation.id), str(user_id), utcnow(), NOTIFICATION_TYPE, target)
        ).fetchone()[0]
        > 0
    )
    position = (
        ConversationParticipant.select(ConversationParticipant.last_read_message_id)
        .where((ConversationParticipant.conversation == conversation.id) & (ConversationParticipant.user == user_id))
        .scalar()
    )
    return ReadState(position, unread_counts([conversation.id], user_id).get(conversation.id, 0), moved)


def unread_counts(conversation_ids, user_id) -> dict:
    """``{conversation id: messages from others after user_id's read position}``, in one query."""
    if not conversation_ids:
        return {}
    mine = ConversationParticipant.alias("mine")
    rows = (
        Message.select(Message.conversation, fn.COUNT(Message.id).alias("unread"))
        .join(mine, on=((mine.conversation == Message.conversation) & (mine.user == user_id)))
        .where(
            Message.conversation.in_(list(conversation_ids))
            & (Message.id > mine.last_read_message_id)
            & (Message.sender.is_null() | (Message.sender != user_id))
        )
        .group_by(Message.conversation)
        .tuples()
    )
    return dict(rows)


def attachment_shared_with(upload_id, user_id) -> bool:
    """Whether ``user_id`` takes part in a conversation holding a message that attaches ``upload_id``.

    The ``attachments <> '{}'`` term lets PostgreSQL use the partial GIN index on
    ``messages.attachments``.
    """
    return (
        Message.select(SQL("1"))
        .join(ConversationParticipant, on=(ConversationParticipant.conversation == Message.conversation))
        .where(
            Expression(Message.attachments, "@>", SQL("ARRAY[%s]::uuid[]", (str(upload_id),)))
            & (Message.attachments != SQL("'{}'"))
            & (ConversationParticipant.user == user_id)
        )
        .exists()
    )


__all__ = [
    "ATTACHABLE_PURPOSES",
    "Blocked",
    "InvalidAttachments",
    "MessagingError",
    "OwnListing",
    "Posted",
    "ReadState",
    "attachment_errors",
    "attachment_shared_with",
    "find_for",
    "mark_read",
    "open_conversation",
    "post_message",
    "unread_counts",
]
