"""Schemas of accounts, sessions, the current user and admin user management."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.schemas import (
    Cursor,
    Email,
    FullName,
    Limit,
    NewPassword,
    Password,
    Phone,
    Request,
    Response,
    Token,
    line,
    text,
)

SelfServiceRole = Literal["buyer", "seller", "agent"]
Role = Literal["buyer", "seller", "agent", "admin"]


class RegisterRequest(Request):
    email: Email
    password: NewPassword
    full_name: FullName
    role: SelfServiceRole = "buyer"


class VerifyEmailRequest(Request):
    token: Token


class ResendVerificationRequest(Request):
    email: Email


class LoginRequest(Request):
    email: Email
    password: Password


class RefreshRequest(Request):
    refresh_token: Token


class LogoutRequest(Request):
    refresh_token: Token | None = None


class ForgotPasswordRequest(Request):
    email: Email


class UnlockAccountRequest(Request):
    token: Token


class ResetPasswordRequest(Request):
    token: Token
    password: NewPassword


class ChangePasswordRequest(Request):
    current_password: Password
    new_password: NewPassword


class ProfilePatch(Request):
    full_name: FullName | None = None
    phone: Phone | None = None


class Profile(Response):
    id: str
    email: str
    full_name: str
    role: Role
    phone: str | None
    email_verified: bool
    created_at: str


class TokenPair(Response):
    access_token: str
    refresh_token: str
    refresh_expires_at: str
    user: Profile
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the OAuth 2 token type (RFC 6750), not a secret
    expires_in: int = 900


class Accepted(Response):
    detail: str
    status: Literal["accepted"] = "accepted"


class SessionView(Response):
    id: str
    created_at: str
    last_used_at: str
    expires_at: str
    revoked_at: str | None
    user_agent: str | None
    ip: str | None
    current: bool = False


class SessionList(Response):
    items: list[SessionView]


class AdminUser(Profile):
    banned: bool
    ban_reason: str | None
    last_login_at: str | None
    payout_account: str | None


class AdminUserList(Response):
    items: list[AdminUser]
    next_cursor: str | None


class AdminUserQuery(Request):
    role: Role | None = None
    q: Annotated[str, line(254, description="Substring of email or name")] | None = None
    banned: bool | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


PayoutAccount = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^acct_[A-Za-z0-9]{1,64}$",
        description="The user's connected account at the payment provider (Stripe Connect), where payouts go",
        examples=["acct_1Nv0FGQ9RKHgCVdK"],
    ),
]


class AdminUserPatch(Request):
    role: Role | None = None
    banned: bool | None = None
    ban_reason: Annotated[str, text(500)] | None = None
    payout_account: PayoutAccount | None = None


class AuditEntryView(Response):
    id: int
    at: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str
    before: dict | None
    after: dict | None
    request_id: str | None


class AuditList(Response):
    items: list[AuditEntryView]
    next_cursor: str | None


class AuditQuery(Request):
    target_type: Annotated[str, line(50)] | None = None
    target_id: Annotated[str, line(100)] | None = None
    actor_id: Annotated[str, line(36)] | None = None
    cursor: Cursor | None = None
    limit: Limit = 50
