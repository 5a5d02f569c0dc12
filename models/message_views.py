"""Reading conversations: pages of messages, and the views the API shows of messages and conversations.

``message_page`` pages a conversation by message id in either direction,
``messages_around`` is the context of one message (moderation), and
``conversation_views`` builds a page of a user's conversations, with their
participants, last message and unread count, in four queries. Posting and
read positions are in ``models/messages.py``.
"""

from __future__ import annotations

from peewee import SQL, fn

from models.accounts import User
from models.conversations import Conversation, ConversationParticipant, Message
from models.messages import unread_counts
from models.properties import Property

_ROLE_ORDER = SQL("ARRAY['buyer', 'owner', 'agent']")


# --- pages --------------------------------------------------------------------------------


def message_page(
    conversation: Conversation, *, before: int | None = None, after: int | None = None, limit: int = 50
) -> tuple[list[Message], int | None, int | None]:
    """``(messages in ascending id order, older, newer)``.

    No cursor: the latest messages. ``before``: the page just older than that
    id; ``after``: the page just newer. ``older`` is the ``before`` value of the
    previous page and ``newer`` the ``after`` value of the next one, each None
    when there is nothing there (now).
    """
    query = Message.select().where(Message.conversation == conversation.id)
    if after is not None:
        rows = list(query.where(Message.id > after).order_by(Message.id).limit(limit + 1))
        more_newer, rows = len(rows) > limit, rows[:limit]
        more_older = bool(rows) and query.where(Message.id < rows[0].id).exists()
    else:
        if before is not None:
            query = query.where(Message.id < before)
        rows = list(query.order_by(Message.id.desc()).limit(limit + 1))
        more_older, rows = len(rows) > limit, rows[:limit][::-1]
        last = Conversation.select(Conversation.last_message_id).where(Conversation.id == conversation.id).scalar()
        more_newer = bool(rows) and last is not None and last > rows[-1].id
    older = rows[0].id if rows and more_older else None
    newer = rows[-1].id if rows and more_newer else None
    return rows, older, newer


def messages_around(conversation_id, message_id: int | None, count: int = 50) -> list[Message]:
    """Up to ``count`` messages around ``message_id``, or the latest ``count``; ascending.

    Half come from before the message when there are that many; a side that
    runs short leaves its room to the other.
    """
    query = Message.select().where(Message.conversation == conversation_id)
    if message_id is None:
        return list(query.order_by(Message.id.desc()).limit(count))[::-1]
    older = list(query.where(Message.id < message_id).order_by(Message.id.desc()).limit(count - 1))
    newer = list(query.where(Message.id >= message_id).order_by(Message.id).limit(count))
    keep_older = min(len(older), max(count // 2, count - len(newer)))
    return older[:keep_older][::-1] + newer[: count - keep_older]


# --- views ---------------------------------------------------------------------------------


def message_view(message: Message) -> dict:
    """A message as participants see it; also the ``data`` of ``message.created`` events."""
    return {
        "id": message.id,
        "conversation_id": str(message.conversation_id),
        "sender_id": str(message.sender_id) if message.sender_id else None,
        "body": message.body,
        "attachments": [str(upload_id) for upload_id in message.attachments or []],
        "client_id": message.client_id,
        "created_at": message.created_at.isoformat(),
    }


def my_conversations(user_id):
    """``user_id``'s conversations with their listing and ``my_last_read``; order and page it yourself."""
    return (
        Conversation.select(Conversation, Property, ConversationParticipant.last_read_message_id.alias("my_last_read"))
        .join(
            ConversationParticipant,
            on=((ConversationParticipant.conversation == Conversation.id) & (ConversationParticipant.user == user_id)),
        )
        .switch(Conversation)
        .join(Property)
    )


def conversation_views(conversations: list[Conversation], user_id) -> list[dict]:
    """Views of ``conversations`` (rows of ``my_conversations``) for ``user_id``, in four queries in all."""
    ids = [c.id for c in conversations]
    if not ids:
        return []
    people: dict = {}
    for conversation_id, member_id, role, full_name in (
        ConversationParticipant.select(
            ConversationParticipant.conversation,
            ConversationParticipant.user,
            ConversationParticipant.role,
            User.full_name,
        )
        .join(User)
        .where(ConversationParticipant.conversation.in_(ids))
        .order_by(ConversationParticipant.conversation, fn.array_position(_ROLE_ORDER, ConversationParticipant.role))
        .tuples()
    ):
        people.setdefault(conversation_id, []).append({"user_id": str(member_id), "full_name": full_name, "role": role})
    last_ids = [c.last_message_id for c in conversations if c.last_message_id]
    last = {m.id: m for m in Message.select().where(Message.id.in_(last_ids))} if last_ids else {}
    unread = unread_counts(ids, user_id)
    views = []
    for c in conversations:
        listing = c.property
        message = last.get(c.last_message_id)
        views.append(
            {
                "id": str(c.id),
                "property": {
                    "id": str(listing.id),
                    "unparsed_address": listing.unparsed_address,
                    "city": listing.city,
                    "list_price": listing.list_price,
                    "currency": listing.currency,
                    "standard_status": listing.standard_status,
                },
                "participants": people.get(c.id, []),
                "last_message": message_view(message) if message else None,
                "unread_count": unread.get(c.id, 0),
                "last_read_message_id": c.conversationparticipant.my_last_read,
                "created_at": c.created_at.isoformat(),
                "last_message_at": c.last_message_at.isoformat() if c.last_message_at else None,
            }
        )
    return views


__all__ = ["conversation_views", "message_page", "message_view", "messages_around", "my_conversations"]
