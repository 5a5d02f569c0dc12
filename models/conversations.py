"""Conversations about a listing: participants, messages, read positions; blocks and reports.

A conversation is one buyer and a listing's people (its owner, and its agent
when it has one), at most one per (listing, buyer). Messages are numbered by a
global sequence (``messages.id``), so "after message N" is a plain keyset and a
participant's read position is the id of the last message they read.

Posting messages and read positions live in ``models/messages.py``, pages and
views of messages and conversations in ``models/message_views.py``; this
module has the tables, blocks and reports.
"""

from __future__ import annotations

import uuid

from peewee import BigAutoField, BigIntegerField, CharField, CompositeKey, ForeignKeyField, TextField, UUIDField
from playhouse.postgres_ext import ArrayField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
from models.db import db
from models.properties import Property

MAX_BODY = 4000
MAX_ATTACHMENTS = 10
REPORT_REASONS = ("spam", "scam", "harassment", "inappropriate", "other")
REPORT_STATUSES = ("open", "actioned", "dismissed")


class Conversation(UUIDModel):
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    buyer = ForeignKeyField(User, column_name="buyer_id", on_delete="CASCADE")
    last_message_id = BigIntegerField(null=True)
    last_message_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "conversations"


class ConversationParticipant(BaseModel):
    conversation = ForeignKeyField(Conversation, column_name="conversation_id", on_delete="CASCADE")
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    role = CharField()  # buyer | owner | agent
    last_read_message_id = BigIntegerField(default=0)
    last_read_at = DateTimeTZField(null=True)
    joined_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "conversation_participants"
        primary_key = CompositeKey("conversation", "user")


class Message(BaseModel):
    id = BigAutoField()
    conversation = ForeignKeyField(Conversation, column_name="conversation_id", on_delete="CASCADE")
    conversation_id: uuid.UUID  # peewee's accessor for the key's own column: no query
    sender = ForeignKeyField(User, column_name="sender_id", null=True, on_delete="SET NULL")
    body = TextField()
    attachments = ArrayField(UUIDField, default=list)
    client_id = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "messages"


class UserBlock(BaseModel):
    blocker = ForeignKeyField(User, column_name="blocker_id", on_delete="CASCADE")
    blocked = ForeignKeyField(User, column_name="blocked_id", on_delete="CASCADE")
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "user_blocks"
        primary_key = CompositeKey("blocker", "blocked")


class UserReport(UUIDModel):
    reporter = ForeignKeyField(User, column_name="reporter_id", null=True, on_delete="SET NULL")
    reporter_id: uuid.UUID | None  # peewee's accessor for the key's own column: no query
    reported = ForeignKeyField(User, column_name="reported_id", on_delete="CASCADE")
    reported_id: uuid.UUID
    conversation = ForeignKeyField(Conversation, column_name="conversation_id", null=True, on_delete="SET NULL")
    conversation_id: uuid.UUID | None
    message = ForeignKeyField(Message, column_name="message_id", null=True, on_delete="SET NULL")
    message_id: int | None
    reason = CharField()
    details = TextField(null=True)
    status = CharField(default="open")
    resolution = TextField(null=True)
    resolved_by = ForeignKeyField(User, column_name="resolved_by", null=True, on_delete="SET NULL")
    resolved_by_id: uuid.UUID | None
    resolved_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "user_reports"


# --- participants and blocks ------------------------------------------------------------


def participates(conversation_id, *user_ids) -> bool:
    """Whether every one of ``user_ids`` is a participant of the conversation."""
    wanted = {str(user_id) for user_id in user_ids}
    found = (
        ConversationParticipant.select()
        .where(
            (ConversationParticipant.conversation == conversation_id) & ConversationParticipant.user.in_(list(wanted))
        )
        .count()
    )
    return found == len(wanted)


def block(blocker_id, blocked_id) -> None:
    """Idempotent: blocking someone already blocked keeps the first block (and its time)."""
    UserBlock.insert(blocker=blocker_id, blocked=blocked_id).on_conflict_ignore().execute()


def unblock(blocker_id, blocked_id) -> None:
    UserBlock.delete().where((UserBlock.blocker == blocker_id) & (UserBlock.blocked == blocked_id)).execute()


# --- reports --------------------------------------------------------------------------


def file_report(
    *, reporter_id, reported_id, reason: str, details: str | None, conversation_id=None, message_id: int | None = None
) -> tuple[UserReport, bool]:
    """Record a report, or return the reporter's open one about the same user and message.

    ``(report, created)``. Call inside a transaction: two reports sent at once
    by the same reporter about the same user are serialised by a transaction
    lock, so the second finds the first.
    """
    db.execute_sql("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"report:{reporter_id}:{reported_id}",))
    same_message = UserReport.message.is_null() if message_id is None else (UserReport.message == message_id)
    existing = (
        UserReport.select()
        .where(
            (UserReport.reporter == reporter_id)
            & (UserReport.reported == reported_id)
            & (UserReport.status == "open")
            & same_message
        )
        .order_by(UserReport.created_at)
        .first()
    )
    if existing is not None:
        return existing, False
    report = UserReport.create(
        reporter=reporter_id,
        reported=reported_id,
        reason=reason,
        details=details,
        conversation=conversation_id,
        message=message_id,
    )
    return report, True


def resolve_report(report_id, *, status: str, resolution: str | None, admin_id) -> UserReport | None:
    """Close an open report (``actioned`` or ``dismissed``); the updated row, or None when it was not open."""
    rows = list(
        UserReport.update(status=status, resolution=resolution, resolved_by=admin_id, resolved_at=utcnow())
        .where((UserReport.id == report_id) & (UserReport.status == "open"))
        .returning(UserReport)
        .execute()
    )
    return rows[0] if rows else None


__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_BODY",
    "REPORT_REASONS",
    "REPORT_STATUSES",
    "Conversation",
    "ConversationParticipant",
    "Message",
    "UserBlock",
    "UserReport",
    "block",
    "file_report",
    "participates",
    "resolve_report",
    "unblock",
]
