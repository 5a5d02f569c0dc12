"""Access tokens that must be refused: each attack on its own, against the real app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models import sessions
from models.accounts import AuthSession
from services.tokens import thumbprint
from tests.api.conftest import assert_problem, bearer


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(services, pair: dict, **changes) -> dict:
    """The claims of a genuine token for this session, with ``changes`` applied."""
    genuine = jwt.decode(pair["access_token"], options={"verify_signature": False})
    genuine.update(changes)
    return {k: v for k, v in genuine.items() if v is not None}


def _sign(services, claims: dict, *, key=None, kid=None) -> str:
    ring = services.tokens.keys
    return jwt.encode(
        claims, key or ring.signing_key, algorithm="EdDSA", headers={"kid": kid or ring.signing_kid, "typ": "at+jwt"}
    )


def _get_me(client, token: str):
    return client.simulate_get("/v1/me", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def pair(login, user):
    return login(user)


def test_the_genuine_token_works(client, pair):
    assert _get_me(client, pair["access_token"]).status_code == 200


def test_alg_none_token_is_refused(client, services, pair):
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": services.tokens.keys.signing_kid}).encode())
    payload = _b64(json.dumps(_claims(services, pair, role="admin")).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        assert_problem(_get_me(client, token), 401)


@pytest.mark.parametrize("encoding", ["pem", "raw"])
def test_hs256_signed_with_the_public_key_is_refused(client, services, pair, encoding):
    public = services.tokens.keys.signing_key.public_key()
    secret = (
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        if encoding == "pem"
        else public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": services.tokens.keys.signing_kid}).encode())
    payload = _b64(json.dumps(_claims(services, pair)).encode())
    signature = _b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    assert_problem(_get_me(client, f"{header}.{payload}.{signature}"), 401)


def test_expired_token_is_refused(client, services, pair):
    now = int(time.time())
    token = _sign(services, _claims(services, pair, iat=now - 3600, nbf=now - 3600, exp=now - 1))
    assert_problem(_get_me(client, token), 401)


def test_not_yet_valid_token_is_refused(client, services, pair):
    now = int(time.time())
    token = _sign(services, _claims(services, pair, nbf=now + 600, exp=now + 1200))
    assert_problem(_get_me(client, token), 401)


def test_wrong_issuer_is_refused(client, services, pair):
    assert_problem(_get_me(client, _sign(services, _claims(services, pair, iss="someone-else"))), 401)


def test_wrong_audience_is_refused(client, services, pair):
    assert_problem(_get_me(client, _sign(services, _claims(services, pair, aud="other-api"))), 401)


def test_missing_session_claim_is_refused(client, services, pair):
    claims = _claims(services, pair)
    del claims["sid"]
    assert_problem(_get_me(client, _sign(services, claims)), 401)


def test_unknown_kid_is_refused(client, services, pair):
    stranger = Ed25519PrivateKey.generate()
    claims = _claims(services, pair)
    assert_problem(_get_me(client, _sign(services, claims, key=stranger, kid=thumbprint(stranger.public_key()))), 401)
    assert_problem(_get_me(client, _sign(services, claims, kid="no-such-key")), 401)


def test_foreign_key_under_our_kid_is_refused(client, services, pair):
    stranger = Ed25519PrivateKey.generate()
    assert_problem(_get_me(client, _sign(services, _claims(services, pair), key=stranger)), 401)


def test_tampered_payload_is_refused(client, services, pair):
    header, payload, signature = pair["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["role"] == "buyer"
    claims["role"] = "admin"
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert_problem(_get_me(client, forged), 401)
    assert_problem(client.simulate_get("/v1/admin/users", headers={"Authorization": f"Bearer {forged}"}), 401)


def test_oversized_tokens_are_refused_even_when_signed(client, services, pair):
    token = _sign(services, _claims(services, pair, pad="x" * 5000))
    assert_problem(_get_me(client, token), 401)


def test_padded_or_non_base64url_tokens_are_refused(client, pair):
    header, payload, signature = pair["access_token"].split(".")
    padded = signature + "=" * (-len(signature) % 4 or 4)
    for token in (
        f"{header}.{payload}.{padded}",
        f"{header}.{payload}.{signature}!",
        f"{header}.{payload}.{signature}.{signature}",
        f"{header}.{payload}.{signature}\u00e9",
    ):
        assert_problem(_get_me(client, token), 401)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": "9999999999"},
        {"exp": 9999999999.5},
        {"exp": True},
        {"sid": 12345},
        {"role": ["admin"]},
        {"sub": None},
        {"nbf": None},
    ],
)
def test_claims_missing_or_of_the_wrong_type_are_refused(client, services, pair, changes):
    # A None in ``changes`` drops the claim.
    assert_problem(_get_me(client, _sign(services, _claims(services, pair, **changes))), 401)


def test_an_unencoded_payload_header_is_refused(client, services, pair):
    ring = services.tokens.keys
    payload = json.dumps(_claims(services, pair)).encode()
    token = jwt.api_jws.encode(
        payload,
        ring.signing_key,
        algorithm="EdDSA",
        is_payload_detached=True,
        headers={"kid": ring.signing_kid, "b64": False},
    )
    assert_problem(_get_me(client, token), 401)


def test_token_of_another_session_id_is_refused(client, services, pair):
    token = _sign(services, _claims(services, pair, sid=str(uuid.uuid4())))
    assert_problem(_get_me(client, token), 401)


def test_token_of_a_revoked_session_is_refused(client, pair, user):
    assert _get_me(client, pair["access_token"]).status_code == 200  # session state now cached
    resp = client.simulate_post("/v1/auth/logout-all", headers=bearer(pair))
    assert resp.status_code == 204
    assert_problem(_get_me(client, pair["access_token"]), 401)


def test_session_revoked_in_the_database_is_refused_once_the_cache_is_cold(client, pair, user, services):
    session = AuthSession.get(AuthSession.user == user.id)
    sessions.revoke([session.id], reason="test")
    assert_problem(_get_me(client, pair["access_token"]), 401)


def test_token_of_a_banned_user_is_refused_on_the_next_call(client, pair, user, admin, auth_headers):
    assert _get_me(client, pair["access_token"]).status_code == 200  # warm the session cache
    resp = client.simulate_patch(
        f"/v1/admin/users/{user.id}", headers=auth_headers(admin), json={"banned": True, "ban_reason": "fraud"}
    )
    assert resp.status_code == 200, resp.text
    assert_problem(_get_me(client, pair["access_token"]), 401)
    assert_problem(client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401)


@pytest.mark.parametrize("value", ["", "Bearer", "Bearer ", "Token abc", "Bearer not.a.jwt", "Bearer a.b.c"])
def test_malformed_authorization_headers_are_refused(client, value):
    assert_problem(client.simulate_get("/v1/me", headers={"Authorization": value}), 401)


def test_a_token_minted_by_a_server_slightly_ahead_is_accepted(client, services, user, login):
    pair = login(user)
    now = int(services.clock())
    token = _sign(services, _claims(services, pair, iat=now + 20, nbf=now + 20, exp=now + 900))
    assert client.simulate_get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
