"""Schemas of blocks, reports about users, and the admins' report queue."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec

from api.schemas import Cursor, Limit, Request, Response, text
from api.schemas.conversations import MessageId, MessageView
from models.conversations import REPORT_REASONS, REPORT_STATUSES

Reason = Literal[REPORT_REASONS]  # type: ignore[valid-type]
ReportStatus = Literal[REPORT_STATUSES]  # type: ignore[valid-type]
Note = Annotated[str, text(2000, min_length=1)]


class BlockView(Response):
    user_id: str
    full_name: str
    blocked_at: str


class BlockList(Response):
    items: list[BlockView]
    next_cursor: str | None


class BlockListQuery(Request):
    cursor: Cursor | None = None
    limit: Limit = 50


class ReportRequest(Request):
    """A report about a user; name the conversation (and message) it is about, if any."""

    user_id: Annotated[uuid.UUID, msgspec.Meta(description="The user reported")]
    reason: Reason
    details: Annotated[Note | None, msgspec.Meta(description="What happened, in your words")] = None
    conversation_id: Annotated[
        uuid.UUID | None, msgspec.Meta(description="A conversation of yours the reported user takes part in")
    ] = None
    message_id: Annotated[
        MessageId | None,
        msgspec.Meta(description="A message of that conversation sent by the reported user; needs `conversation_id`"),
    ] = None


class ReportReceipt(Response):
    id: str
    status: ReportStatus
    created_at: str


class ReportPerson(Response):
    id: str
    full_name: str
    email: str
    role: str
    banned: bool


class ReportView(Response):
    id: str
    status: ReportStatus
    reason: Reason
    details: str | None
    reporter: ReportPerson | None
    reported: ReportPerson
    conversation_id: str | None
    message_id: int | None
    resolution: str | None
    resolved_by: str | None
    resolved_at: str | None
    created_at: str


class ReportDetail(ReportView):
    message: Annotated[MessageView | None, msgspec.Meta(description="The message reported, if one was named")]
    messages: Annotated[
        list[MessageView],
        msgspec.Meta(
            description="Up to 50 messages of the conversation around the reported one (or its latest), ascending"
        ),
    ]


class ReportList(Response):
    items: list[ReportView]
    next_cursor: str | None


class ReportListQuery(Request):
    status: ReportStatus | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class ReportResolution(Request):
    status: Literal["actioned", "dismissed"]
    resolution: Annotated[Note | None, msgspec.Meta(description="What was decided and why")] = None
