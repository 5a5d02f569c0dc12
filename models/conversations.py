"""Conversations about a listing: participants, messages, read positions; blocks and reports.

A conversation is one buyer and a listing's people (its owner, and its agent
when it has one), at most one per (listing, buyer). Messages are numbered by a
global sequence (``messages.id``), so "after message N" is a plain keyset and a
participant's read position is the id of the last message they read.
"""
from __future__ import annotations

from peewee import BigAutoField, BigIntegerField, CharField, CompositeKey, ForeignKeyField, TextField, UUIDField
from playhouse.postgres_ext import ArrayField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
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
    reported = ForeignKeyField(User, column_name="reported_id", on_delete="CASCADE")
    conversation = ForeignKeyField(Conversation, column_name="conversation_id", null=True, on_delete="SET NULL")
    message = ForeignKeyField(Message, column_name="message_id", null=True, on_delete="SET NULL")
    reason = CharField()
    details = TextField(null=True)
    status = CharField(default="open")
    resolution = TextField(null=True)
    resolved_by = ForeignKeyField(User, column_name="resolved_by", null=True, on_delete="SET NULL")
    resolved_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "user_reports"


__all__ = ["Conversation", "ConversationParticipant", "Message", "UserBlock", "UserReport", "MAX_BODY",
           "MAX_ATTACHMENTS", "REPORT_REASONS", "REPORT_STATUSES"]
