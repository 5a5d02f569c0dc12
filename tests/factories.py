"""Rows for tests, built through the same models the application uses."""

from __future__ import annotations

import itertools
import uuid

import pyotp

from models.accounts import User
from models.base import utcnow
from models.mfa import MfaFactor
from models.passwords import hash_password
from services.totp import TotpCodes

_seq = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_user(
    *,
    role: str = "buyer",
    email: str | None = None,
    password: str = PASSWORD,
    verified: bool = True,
    banned: bool = False,
    full_name: str | None = None,
) -> User:
    n = next(_seq)
    return User.create(
        id=uuid.uuid4(),
        email=email or f"user{n}-{uuid.uuid4().hex[:6]}@example.com",
        password_hash=hash_password(password),
        full_name=full_name or f"Test User {n}",
        role=role,
        email_verified_at=utcnow() if verified else None,
        banned_at=utcnow() if banned else None,
    )


def enroll_totp(user: User, secret_key: str, *, friendly_name: str | None = None) -> str:
    """A verified authenticator-app factor for ``user``, sealed as the API seals it; returns its secret."""
    codes = TotpCodes.from_secret_key(secret_key)
    factor_id = uuid.uuid4()
    secret = codes.new_secret()
    MfaFactor.create(
        id=factor_id,
        user=user.id,
        friendly_name=friendly_name,
        secret_sealed=codes.seal(secret, factor_id),
        status="verified",
    )
    return secret


def fresh_totp_code(user: User, secret_key: str) -> str:
    """The current code of ``user``'s first verified factor, usable even if one was accepted this period.

    Tests log the same account in many times within one 30-second period, and a code is accepted
    once: the factor's replay marker is cleared first. Tests of the replay rule itself use pyotp.
    """
    factor = MfaFactor.select().where((MfaFactor.user == user.id) & (MfaFactor.status == "verified")).first()
    MfaFactor.update(last_used_step=None).where(MfaFactor.id == factor.id).execute()
    secret = TotpCodes.from_secret_key(secret_key).open(factor.secret_sealed, factor.id)
    return pyotp.TOTP(secret).now()
