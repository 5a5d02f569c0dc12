"""Password policy and hashing.

New hashes are argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).
bcrypt ``$2a$``/``$2b$``/``$2y$`` hashes, as the previous backend stored them,
are verified and reported as needing a rehash so the next login upgrades them.
"""

from __future__ import annotations

import functools

import argon2
import bcrypt

MIN_LENGTH = 8
MAX_LENGTH = 128  # at least 64 must be allowed; argon2 cost is flat in length
# The policy refuses the most common passwords of a public breach corpus.
COMMON_PASSWORDS_CHECKED = 30000

_hasher = argon2.PasswordHasher(
    time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16, type=argon2.Type.ID
)
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# A real hash, verified when the account does not exist so that unknown
# emails cost the same time as wrong passwords.
_DUMMY_HASH = _hasher.hash("hearth-timing-equaliser")


@functools.lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"][:COMMON_PASSWORDS_CHECKED])


def policy_problem(password: str, *, email: str = "", full_name: str = "") -> str | None:
    """Return why ``password`` is not acceptable, or ``None`` when it is."""
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"must be at most {MAX_LENGTH} characters"
    lowered = password.lower()
    if lowered in _common_passwords():
        return "is one of the most common passwords; choose another"
    if email and lowered == email.lower().split("@")[0]:
        return "must not be your email address"
    if full_name and lowered.replace(" ", "") == full_name.lower().replace(" ", ""):
        return "must not be your name"
    return None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Check ``password`` against an argon2 or bcrypt hash; ``None`` burns equal time and fails."""
    if not stored:
        _verify_argon2(_DUMMY_HASH, password)
        return False
    if stored.startswith(_BCRYPT_PREFIXES):
        try:
            return bcrypt.checkpw(password.encode()[:72], stored.encode())
        except ValueError:
            return False
    return _verify_argon2(stored, password)


def _verify_argon2(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    if stored.startswith(_BCRYPT_PREFIXES):
        return True
    try:
        return _hasher.check_needs_rehash(stored)
    except argon2.exceptions.InvalidHashError:
        return True
