"""Request bodies of the Supabase-compatible ``/auth/v1`` API, as supabase-js sends them.

Unlike Hearth's own schemas these accept unknown fields: the client adds its own
(``gotrue_meta_security``, ``code_challenge``, ...) and GoTrue ignores what it
does not use. Lengths are still bounded; a body that does not fit is a 400
``validation_failed``. Passwords are only bounded here: the password policy
answers ``weak_password`` the way GoTrue does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from api.schemas import Email, Password, line

Token = Annotated[str, line(200, min_length=1)]
# user_metadata as sent: free-form, bounded by the body size and checked for size when stored.
Metadata = dict[str, Any]


class GoTrueRequest(msgspec.Struct, kw_only=True):
    """Base of /auth/v1 bodies: unknown fields are ignored, as GoTrue ignores them."""


class SignupBody(GoTrueRequest):
    email: Email | None = None
    phone: str | None = None
    password: Password | None = None
    data: Metadata | None = None


class PasswordGrantBody(GoTrueRequest):
    email: Email | None = None
    phone: str | None = None
    password: Password | None = None


class RefreshGrantBody(GoTrueRequest):
    refresh_token: Token | None = None


class RecoverBody(GoTrueRequest):
    email: Email | None = None


VerifyType = Literal["signup", "email", "recovery", "invite", "magiclink", "email_change", "sms", "phone_change"]


class VerifyBody(GoTrueRequest):
    type: VerifyType | None = None
    token: Token | None = None
    token_hash: Token | None = None
    email: Email | None = None
    phone: str | None = None


class UserUpdateBody(GoTrueRequest):
    email: Email | None = None
    phone: str | None = None
    password: Password | None = None
    current_password: Password | None = None
    nonce: str | None = None
    data: Metadata | None = None
    app_metadata: Metadata | None = None


class GrantQuery(GoTrueRequest):
    grant_type: Literal["password", "refresh_token"] | None = None


class LogoutQuery(GoTrueRequest):
    scope: Literal["global", "local", "others"] = "global"


class VerifyQuery(GoTrueRequest):
    type: VerifyType | None = None
    token: Token | None = None
    redirect_to: Annotated[str, line(2000)] | None = None


class EnrollFactorBody(GoTrueRequest):
    """``POST /auth/v1/factors`` (supabase-js ``mfa.enroll``); only ``totp`` is offered."""

    factor_type: Annotated[str, line(40)] | None = None
    friendly_name: Annotated[str, line(100)] | None = None
    issuer: Annotated[str, line(100)] | None = None
    phone: Annotated[str, line(40)] | None = None


class ChallengeFactorBody(GoTrueRequest):
    """``POST /auth/v1/factors/{id}/challenge``: supabase-js sends its own params (``factorId``), ignored."""

    channel: Annotated[str, line(20)] | None = None


class VerifyFactorBody(GoTrueRequest):
    """``POST /auth/v1/factors/{id}/verify`` (supabase-js ``mfa.verify``)."""

    challenge_id: Annotated[str, line(64)] | None = None
    code: Annotated[str, line(20)] | None = None
