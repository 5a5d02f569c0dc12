"""Accounts: users, their login sessions and single-use account tokens."""

from __future__ import annotations

import datetime
import hashlib
import secrets
import uuid

from peewee import BlobField, CharField, ForeignKeyField, TextField
from playhouse.postgres_ext import BinaryJSONField

from models.base import BaseModel, DateTimeTZField, UUIDModel, utcnow

ROLES = ("buyer", "seller", "agent", "admin")
SELF_SERVICE_ROLES = ("buyer", "seller", "agent")


def token_hash(raw: str) -> bytes:
    """Tokens are stored only as their SHA-256; the raw value exists only in the client's hands."""
    return hashlib.sha256(raw.encode()).digest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class User(UUIDModel):
    email = TextField()
    password_hash = TextField(null=True)
    full_name = TextField()
    role = CharField()
    phone = TextField(null=True)
    phone_verified_at = DateTimeTZField(null=True)
    email_verified_at = DateTimeTZField(null=True)
    banned_at = DateTimeTZField(null=True)
    ban_reason = TextField(null=True)
    # A ban with an end, as imported from Supabase (migration 0014); None means until lifted.
    banned_until = DateTimeTZField(null=True)
    # Free-form profile data (GoTrue's user_metadata), kept for the Supabase-compatible API.
    user_metadata = BinaryJSONField(default=dict)
    last_login_at = DateTimeTZField(null=True)
    # The seller's connected account at the payment provider (migration 0012), where payouts go.
    payout_account = TextField(null=True)
    created_at = DateTimeTZField(default=utcnow)
    updated_at = DateTimeTZField(default=utcnow)

    class Meta:
        table_name = "users"

    @staticmethod
    def normalize_email(email: str) -> str:
        return email.strip().lower()

    @property
    def has_verified_phone(self) -> bool:
        """A number proved with a texted code: the only kind text messages go to."""
        return bool(self.phone and self.phone_verified_at)

    @property
    def is_banned(self) -> bool:
        if self.banned_at is None:
            return False
        return self.banned_until is None or self.banned_until > utcnow()

    def profile(self) -> dict:
        """The user's own view of their account (what ``GET /v1/me`` returns)."""
        return {
            "id": str(self.id),
            "email": self.email,
            "full_name": self.full_name,
            "role": self.role,
            "phone": self.phone,
            "email_verified": self.email_verified_at is not None,
            "created_at": self.created_at.isoformat(),
        }

    def admin_view(self) -> dict:
        view = self.profile()
        view.update(
            banned=self.is_banned,
            ban_reason=self.ban_reason,
            last_login_at=self.last_login_at.isoformat() if self.last_login_at else None,
            payout_account=self.payout_account,
        )
        return view


class AuthSession(UUIDModel):
    """One login: the family of refresh tokens that descend from it."""

    user = ForeignKeyField(User, column_name="user_id", backref="sessions", on_delete="CASCADE")
    created_at = DateTimeTZField(default=utcnow)
    last_used_at = DateTimeTZField(default=utcnow)
    expires_at = DateTimeTZField()
    revoked_at = DateTimeTZField(null=True)
    revoked_reason = TextField(null=True)
    user_agent = TextField(null=True)
    ip = TextField(null=True)
    # The assurance level the login reached (aal1: a password; aal2: and a second factor) and how
    # (GoTrue's amr: [{"method", "timestamp"}]); refreshes keep both (migration 0016).
    aal = CharField(default="aal1")
    amr = BinaryJSONField(default=list)

    class Meta:
        table_name = "auth_sessions"

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > utcnow()

    def view(self) -> dict:
        return {
            "id": str(self.id),
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "user_agent": self.user_agent,
            "ip": self.ip,
        }


class RefreshToken(BaseModel):
    token_hash = BlobField(primary_key=True)
    session = ForeignKeyField(AuthSession, column_name="session_id", on_delete="CASCADE")
    created_at = DateTimeTZField(default=utcnow)
    used_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "refresh_tokens"


class AccountToken(BaseModel):
    """A single-use token mailed to the user (email verification, password reset)."""

    token_hash = BlobField(primary_key=True)
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    user_id: uuid.UUID  # peewee's accessor for the key's own column: no query
    purpose = CharField()
    created_at = DateTimeTZField(default=utcnow)
    expires_at = DateTimeTZField()
    used_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "account_tokens"

    @classmethod
    def redeem(cls, raw: str, purpose: str) -> AccountToken | None:
        """Mark the token used and return it, or ``None`` if it is unknown, used or expired.

        The conditional update makes redemption single-use even under concurrent requests.
        """
        digest = token_hash(raw)
        now = utcnow()
        rows = (
            cls.update(used_at=now)
            .where(
                (cls.token_hash == digest) & (cls.purpose == purpose) & (cls.used_at.is_null()) & (cls.expires_at > now)
            )
            .returning(cls.token_hash, cls.user, cls.purpose, cls.expires_at)
            .execute()
        )
        rows = list(rows)
        return rows[0] if rows else None

    @classmethod
    def void_unused(cls, user_id, purpose: str) -> int:
        """Use up every outstanding token of the user for ``purpose`` (after a password change)."""
        return (
            cls.update(used_at=utcnow())
            .where((cls.user == user_id) & (cls.purpose == purpose) & cls.used_at.is_null())
            .execute()
        )


def expires_in(seconds: int) -> datetime.datetime:
    return utcnow() + datetime.timedelta(seconds=seconds)


__all__ = [
    "ROLES",
    "SELF_SERVICE_ROLES",
    "AccountToken",
    "AuthSession",
    "RefreshToken",
    "User",
    "expires_in",
    "new_token",
    "token_hash",
]
