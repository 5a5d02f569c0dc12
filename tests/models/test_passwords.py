"""Password hashing and policy rules, without HTTP."""

from __future__ import annotations

import bcrypt
import pytest

from models.passwords import hash_password, needs_rehash, policy_problem, verify_password

OWASP_ARGON2ID = "$argon2id$v=19$m=19456,t=2,p=1$"


def test_new_hashes_are_argon2id_with_owasp_parameters():
    stored = hash_password("correct horse battery staple")
    assert stored.startswith(OWASP_ARGON2ID)
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "correct horse battery stapl")
    assert not needs_rehash(stored)
    assert hash_password("correct horse battery staple") != stored  # salted


@pytest.mark.parametrize("prefix", [b"$2b$", b"$2a$", b"$2y$"])
def test_bcrypt_hashes_verify_and_ask_for_a_rehash(prefix):
    stored = bcrypt.hashpw(b"legacy password 1", bcrypt.gensalt(rounds=4)).replace(b"$2b$", prefix, 1).decode()
    assert verify_password(stored, "legacy password 1")
    assert not verify_password(stored, "legacy password 2")
    assert needs_rehash(stored)


def test_weaker_argon2_parameters_ask_for_a_rehash():
    import argon2

    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("some passphrase")
    assert verify_password(weak, "some passphrase")
    assert needs_rehash(weak)


def test_missing_or_garbage_hashes_never_verify():
    assert not verify_password(None, "anything at all")
    assert not verify_password("", "anything at all")
    assert not verify_password("not-a-hash", "not-a-hash")
    assert not verify_password("$2b$04$invalid", "whatever")


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short1!", "at least 8"),
        ("password123", "common"),
        ("qwerty123", "common"),
        ("Password123", "common"),
        ("x" * 129, "at most 128"),
    ],
)
def test_policy_refuses(password, problem):
    assert problem in (policy_problem(password) or "")


def test_policy_refuses_the_users_own_name_and_email():
    assert policy_problem("adalovelace", email="adalovelace@example.com")
    assert policy_problem("Ada Lovelace X", full_name="ada lovelacex")


@pytest.mark.parametrize("password", ["eight ch", "x7$Lq!9z" * 8, "ü" * 64, "a" * 30 + "é" * 98])
def test_policy_accepts(password):
    assert policy_problem(password) is None


def test_a_64_character_password_round_trips():
    password = "Tr0ub4dor&3-" * 5 + "abcd"
    assert len(password) == 64
    assert verify_password(hash_password(password), password)
