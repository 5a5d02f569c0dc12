"""Saved searches: a user's ``GET /v1/properties`` query kept under a name, and what it was alerted about."""
from __future__ import annotations

from peewee import BigIntegerField, BooleanField, CharField, CompositeKey, ForeignKeyField, TextField
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow
from models.properties import Property

MAX_PER_USER = 25
ALERT_REASONS = ("new", "price_drop")


class SavedSearch(UUIDModel):
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    name = TextField()
    query = BinaryJSONField()
    alerts = BooleanField(default=True)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "saved_searches"


class SavedSearchAlert(BaseModel):
    saved_search = ForeignKeyField(SavedSearch, column_name="saved_search_id", on_delete="CASCADE")
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    reason = CharField()
    price = BigIntegerField(default=0)
    notification_id = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "saved_search_alerts"
        primary_key = CompositeKey("saved_search", "property", "reason", "price")


class SavedSearchState(BaseModel):
    id = BooleanField(primary_key=True, default=True)
    last_history_id = BigIntegerField(default=0)
    last_run_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "saved_search_state"


__all__ = ["SavedSearch", "SavedSearchAlert", "SavedSearchState", "MAX_PER_USER", "ALERT_REASONS"]
