"""Sign-in identities: who a user is to each provider that can sign them in (migration 0014)."""

from __future__ import annotations

from peewee import ForeignKeyField, TextField
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import DateTimeTZField, UUIDModel, utcnow


class UserIdentity(UUIDModel):
    user = ForeignKeyField(User, column_name="user_id", backref="identities", on_delete="CASCADE")
    provider = TextField()
    provider_id = TextField()
    identity_data = BinaryJSONField(default=dict)
    email = TextField(null=True)
    last_sign_in_at = DateTimeTZField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "user_identities"

    def view(self) -> dict:
        return {
            "id": str(self.id),
            "provider": self.provider,
            "provider_id": self.provider_id,
            "email": self.email,
            "identity_data": self.identity_data,
            "last_sign_in_at": self.last_sign_in_at.isoformat() if self.last_sign_in_at else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


__all__ = ["UserIdentity"]
