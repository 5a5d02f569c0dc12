"""Favorites: the listings a user saved (``/v1/me/favorites``), at most once each."""

from __future__ import annotations

from peewee import CompositeKey, ForeignKeyField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, utcnow
from models.properties import Property


class Favorite(BaseModel):
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    property = ForeignKeyField(Property, column_name="property_id", on_delete="CASCADE")
    created_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "favorites"
        primary_key = CompositeKey("user", "property")


__all__ = ["Favorite"]
