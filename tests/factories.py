"""Rows for tests, built through the same models the application uses."""

from __future__ import annotations

import itertools
import uuid

from models.accounts import User
from models.base import utcnow
from models.passwords import hash_password

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
