"""Schemas of conversations about listings, their messages and read positions."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec

from api.schemas import Cursor, Request, Response, text
from models.conversations import MAX_ATTACHMENTS, MAX_BODY

MessageBody = Annotated[
    str,
    text(
        MAX_BODY,
        min_length=1,
        description=f"The message text, 1 to {MAX_BODY} characters; leading and trailing whitespace is dropped",
        examples=["Is the garden south-facing?"],
    ),
]
Attachments = Annotated[
    list[uuid.UUID],
    msgspec.Meta(
        max_length=MAX_ATTACHMENTS,
        description=f"Up to {MAX_ATTACHMENTS} ids of your own uploads (purpose `attachment` or `document`) whose scan "
        "found them clean",
    ),
]
ClientId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Your own id for this message: sending it again with the same one posts it once",
        examples=["c7f1e2-0001"],
    ),
]
MessageId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1, description="A message id")]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100, description="Page size (at most 100)")]


class ConversationStart(Request):
    """The first message about a listing (or the next one, when the conversation exists)."""

    property_id: uuid.UUID
    body: MessageBody
    attachments: Attachments = msgspec.field(default_factory=list)
    client_id: ClientId | None = None


class MessagePost(Request):
    body: MessageBody
    attachments: Attachments = msgspec.field(default_factory=list)
    client_id: ClientId | None = None


class ReadRequest(Request):
    message_id: Annotated[
        MessageId | None,
        msgspec.Meta(description="The last message you read; default (and at most) the conversation's last message"),
    ] = None


class ConversationListQuery(Request):
    cursor: Cursor | None = None
    limit: Limit = 20


class MessagePageQuery(Request):
    before: Annotated[MessageId | None, msgspec.Meta(description="The page just older than this message id")] = None
    after: Annotated[MessageId | None, msgspec.Meta(description="The page just newer than this message id")] = None
    limit: Limit = 50


class MessageView(Response):
    """A message; also the ``data`` of a ``message.created`` event."""

    id: int
    conversation_id: str
    sender_id: str | None
    body: str
    attachments: list[str]
    client_id: str | None
    created_at: str


class ListingBasics(Response):
    id: str
    unparsed_address: str | None
    city: str
    list_price: int
    currency: str
    standard_status: str


class ParticipantView(Response):
    user_id: str
    full_name: str
    role: Annotated[str, msgspec.Meta(description="`buyer`, `owner` or `agent`")]


class ConversationView(Response):
    id: str
    property: ListingBasics
    participants: list[ParticipantView]
    last_message: MessageView | None
    unread_count: Annotated[int, msgspec.Meta(description="Messages from others after your read position")]
    last_read_message_id: Annotated[int, msgspec.Meta(description="Your read position (0: nothing read)")]
    created_at: str
    last_message_at: str | None


class ConversationStarted(ConversationView):
    message: MessageView


class ConversationList(Response):
    items: list[ConversationView]
    next_cursor: str | None


class MessagePage(Response):
    items: Annotated[list[MessageView], msgspec.Meta(description="Ascending by id")]
    older: Annotated[int | None, msgspec.Meta(description="`before` for the previous (older) page; null: none")]
    newer: Annotated[int | None, msgspec.Meta(description="`after` for the next (newer) page; null: none now")]


class ReadState(Response):
    last_read_message_id: int
    unread_count: int
