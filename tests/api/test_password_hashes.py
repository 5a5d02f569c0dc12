"""Passwords over HTTP: argon2id for new accounts, bcrypt imports upgraded at login, the policy."""

from __future__ import annotations

import uuid

import bcrypt
import pytest

from models.accounts import User
from models.base import utcnow
from tests.api.conftest import assert_problem
from tests.models.test_passwords import OWASP_ARGON2ID


def _register(client, password, email="kim@example.com"):
    return client.simulate_post(
        "/v1/auth/register", json={"email": email, "password": password, "full_name": "Kim Example"}
    )


def test_new_accounts_get_argon2id_hashes(client):
    assert _register(client, "a perfectly fine passphrase").status_code == 202
    assert User.get(User.email == "kim@example.com").password_hash.startswith(OWASP_ARGON2ID)


@pytest.mark.parametrize("prefix", ["$2b$", "$2a$"])
def test_imported_bcrypt_user_logs_in_and_is_upgraded_to_argon2id(client, prefix):
    legacy = bcrypt.hashpw(b"supabase era secret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", prefix, 1)
    assert legacy.startswith(prefix)
    user = User.create(
        id=uuid.uuid4(),
        email=f"old-{prefix[2]}@example.com",
        password_hash=legacy,
        full_name="Imported User",
        role="seller",
        email_verified_at=utcnow(),
    )

    wrong = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": "supabase era secreT"})
    assert_problem(wrong, 401)
    assert User.get_by_id(user.id).password_hash == legacy

    resp = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": "supabase era secret"})
    assert resp.status_code == 200, resp.text
    upgraded = User.get_by_id(user.id).password_hash
    assert upgraded.startswith(OWASP_ARGON2ID)
    # And the upgraded hash still lets the user in.
    again = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": "supabase era secret"})
    assert again.status_code == 200
    assert User.get_by_id(user.id).password_hash == upgraded


@pytest.mark.parametrize("password", ["2short!", "password123", "qwerty123", "x" * 129])
def test_weak_or_oversized_passwords_are_refused_naming_the_field(client, password):
    assert_problem(_register(client, password), 422, field="body.password")
    assert User.select().where(User.email == "kim@example.com").count() == 0


def test_a_password_equal_to_the_email_name_is_refused(client):
    assert_problem(_register(client, "kimberley1", email="kimberley1@example.com"), 422, field="body.password")


def test_a_64_character_password_is_accepted_and_logs_in(client):
    password = "0123456789abcdef" * 4
    assert len(password) == 64
    assert _register(client, password).status_code == 202
    User.update(email_verified_at=utcnow()).where(User.email == "kim@example.com").execute()
    resp = client.simulate_post("/v1/auth/login", json={"email": "kim@example.com", "password": password})
    assert resp.status_code == 200, resp.text
