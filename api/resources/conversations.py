"""``/v1/conversations``: a buyer and a listing's people talking about the listing.

Only participants see a conversation; everyone else, admins included, gets
404 (admins read messages only through a report, ``/v1/admin/reports/{id}``).
Writes happen in one transaction; after the commit the notification jobs are
submitted and the change is published on the channel ``conversation:{id}``
(``message.created``, ``conversation.read``). The message is stored whether or
not publishing works: a client that missed the event finds it on the next page.
"""

from __future__ import annotations

import logging

import falcon
from redis.exceptions import RedisError

from api.cursor import CursorCodec
from api.errors import Problem, not_found, validation_error
from api.operation import operation
from api.resources.properties import load_visible
from api.schemas.conversations import (
    ConversationList,
    ConversationListQuery,
    ConversationStart,
    ConversationStarted,
    ConversationView,
    MessagePage,
    MessagePageQuery,
    MessagePost,
    MessageView,
    ReadRequest,
    ReadState,
)
from models import message_views, messages
from models.conversations import Conversation
from models.db import db

log = logging.getLogger("hearth.conversations")
TAGS = ("conversations",)
BLOCKED_DETAIL = "You cannot message this person: one of you blocked the other."


def blocked() -> Problem:
    return Problem(falcon.HTTP_403, "Forbidden", BLOCKED_DETAIL, slug="blocked")


def _refused(exc: messages.MessagingError) -> Problem:
    if isinstance(exc, messages.Blocked):
        return blocked()
    if isinstance(exc, messages.InvalidAttachments):
        return validation_error(
            [{"field": f"body.attachments[{index}]", "message": message} for index, message in exc.errors]
        )
    return validation_error(
        [{"field": "body.property_id", "message": "this is your own listing; its buyers start conversations with you"}]
    )


def _status(resp, created: bool) -> None:
    # 201 is the documented status; an existing conversation or a repeated client_id answers 200.
    resp.status = falcon.HTTP_201 if created else falcon.HTTP_200


def load_mine(conversation_id, principal) -> Conversation:
    """The conversation if the caller takes part in it; otherwise 404, whoever asks."""
    conversation = messages.find_for(conversation_id, principal.user_id)
    if conversation is None:
        raise not_found("conversation")
    return conversation


def view_of(conversation_id, user_id) -> dict:
    return message_views.conversation_views(
        list(message_views.my_conversations(user_id).where(Conversation.id == conversation_id)), user_id
    )[0]


class Conversations:
    def __init__(self, secret: str | None = None):
        self.cursors = CursorCodec(secret or "", "conversations")

    def publish(self, req, conversation_id, type_: str, data: dict) -> None:
        try:
            req.context.services.events.publish(f"conversation:{conversation_id}", type_, data)
        except (RedisError, OSError):
            log.warning(
                "could not publish a conversation event",
                extra={"conversation_id": str(conversation_id), "type": type_},
                exc_info=True,
            )

    def after_post(self, req, posted: messages.Posted) -> dict:
        """What follows a committed post (its notification jobs went with the commit): its event.

        Returns the message view.
        """
        view = message_views.message_view(posted.message)
        if posted.created:
            self.publish(req, posted.message.conversation_id, "message.created", view)
        return view

    @operation(
        "My conversations",
        query=ConversationListQuery,
        response=ConversationList,
        tags=TAGS,
        description="Most recent activity first, each with its listing, participants, last message and "
        "your `unread_count` (messages from others after your read position); pages follow "
        "`next_cursor`.",
    )
    def on_get(self, req, resp):
        q: ConversationListQuery = req.context.query
        user_id = req.context.principal.user_id
        rows, next_cursor = self.cursors.newest_first(
            message_views.my_conversations(user_id), Conversation.last_message_at, Conversation.id, q.cursor, q.limit
        )
        resp.media = {"items": message_views.conversation_views(rows, user_id), "next_cursor": next_cursor}

    @operation(
        "Message a listing's people",
        body=ConversationStart,
        response=ConversationStarted,
        status=201,
        permission="messages:write",
        rate="contact",
        errors=(403, 404, 422, 429),
        tags=TAGS,
        also={200: "The conversation existed: the message was added to it"},
        description="Starts your conversation about a listing you can see (404 otherwise) with its owner "
        "and its agent, and posts the first message: 201 with `Location`. You have one "
        "conversation per listing: when it exists, the message is added to it (200). The "
        "listing's own people cannot start one (422). 403 `blocked` when you blocked one of "
        "them or one of them blocked you. A repeated `client_id` returns the message it "
        "posted the first time (200) and posts nothing. Limited per user "
        "(`RATE_LIMIT_CONTACT`, 30 an hour by default; 429 with `Retry-After`): replies in a "
        "conversation go through `POST /v1/conversations/{id}/messages`.",
    )
    def on_post(self, req, resp):
        body: ConversationStart = req.context.body
        principal = req.context.principal
        listing = load_visible(body.property_id, principal)
        try:
            with db.atomic():
                conversation, created = messages.open_conversation(listing, principal.user_id)
                posted = messages.post_message(
                    conversation.id, principal.user_id, body.body.strip(), body.attachments, body.client_id
                )
        except messages.MessagingError as exc:
            raise _refused(exc) from None
        if posted is None:  # the caller takes part in the conversation just opened, so it cannot be
            raise RuntimeError(f"conversation {conversation.id} refused a post by its own participant")
        message = self.after_post(req, posted)
        _status(resp, created)
        if created:
            resp.location = f"/v1/conversations/{conversation.id}"
        resp.media = dict(view_of(conversation.id, principal.user_id), message=message)

    @operation(
        "One conversation",
        response=ConversationView,
        errors=(404,),
        tags=TAGS,
        description="Participants only; anyone else gets 404.",
    )
    def on_get_item(self, req, resp, conversation_id):
        principal = req.context.principal
        conversation = load_mine(conversation_id, principal)
        resp.media = view_of(conversation.id, principal.user_id)

    @operation(
        "A page of messages",
        query=MessagePageQuery,
        response=MessagePage,
        errors=(404,),
        tags=TAGS,
        description="Items in ascending id order. Without `before`/`after`: the latest messages. "
        "`before=<id>`: the page just older than that message; `after=<id>`: the page just "
        "newer (not both: 422). `older` is the `before` of the previous page and `newer` the "
        "`after` of the next one, null when there is none.",
    )
    def on_get_messages(self, req, resp, conversation_id):
        q: MessagePageQuery = req.context.query
        if q.before is not None and q.after is not None:
            raise validation_error([{"field": "query.after", "message": "give either before or after, not both"}])
        conversation = load_mine(conversation_id, req.context.principal)
        rows, older, newer = message_views.message_page(conversation, before=q.before, after=q.after, limit=q.limit)
        resp.media = {"items": [message_views.message_view(row) for row in rows], "older": older, "newer": newer}

    @operation(
        "Send a message",
        body=MessagePost,
        response=MessageView,
        status=201,
        permission="messages:write",
        errors=(403, 404, 422),
        tags=TAGS,
        description="Participants only (404 otherwise). 403 `blocked` when you blocked another "
        "participant or one of them blocked you. A repeated `client_id` returns the message it "
        "posted the first time (200) and posts nothing. Participants subscribed to "
        "`conversation:{id}` receive it as a `message.created` event.",
    )
    def on_post_messages(self, req, resp, conversation_id):
        body: MessagePost = req.context.body
        principal = req.context.principal
        try:
            with db.atomic():
                # The participation check is part of the post's first query (404 below when it fails).
                posted = messages.post_message(
                    conversation_id, principal.user_id, body.body.strip(), body.attachments, body.client_id
                )
        except messages.MessagingError as exc:
            raise _refused(exc) from None
        if posted is None:
            raise not_found("conversation")
        resp.media = self.after_post(req, posted)
        _status(resp, posted.created)

    @operation(
        "Mark messages read",
        body=ReadRequest,
        response=ReadState,
        errors=(404,),
        tags=TAGS,
        description="Moves your read position forward only: to `message_id` (capped at the last "
        "message) or to the last message. The other participants see it as a "
        "`conversation.read` event (read receipts); your message notifications for what you "
        "have now read are marked read.",
    )
    def on_post_read(self, req, resp, conversation_id):
        body: ReadRequest = req.context.body
        principal = req.context.principal
        conversation = load_mine(conversation_id, principal)
        with db.atomic():
            state = messages.mark_read(conversation, principal.user_id, body.message_id)
        if state.moved:
            self.publish(
                req,
                conversation.id,
                "conversation.read",
                {
                    "conversation_id": str(conversation.id),
                    "user_id": principal.user_id,
                    "last_read_message_id": state.last_read_message_id,
                },
            )
        resp.media = {"last_read_message_id": state.last_read_message_id, "unread_count": state.unread_count}
