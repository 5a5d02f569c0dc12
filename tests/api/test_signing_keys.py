"""Signing keys: rotation through ``JWT_PRIVATE_KEYS`` and the published JWKS."""

from __future__ import annotations

import base64

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from falcon import testing

from api.app import build_services, create_app
from services.tokens import InvalidToken, KeyRing, TokenIssuer, generate_private_pem, thumbprint
from tests.api.conftest import assert_problem, bearer
from tests.factories import PASSWORD


def _issuer(ring: KeyRing) -> TokenIssuer:
    return TokenIssuer(ring, issuer="hearth", audience="hearth-api", ttl=900)


def test_a_ring_with_the_new_key_first_verifies_tokens_of_the_old_key():
    old_pem, new_pem = generate_private_pem(), generate_private_pem()
    old_ring = KeyRing.from_pem(old_pem)
    rotated = KeyRing.from_pem(new_pem + "\n" + old_pem)

    old_token, _ = _issuer(old_ring).issue(user_id="u1", role="buyer", session_id="s1")
    claims = _issuer(rotated).verify(old_token)
    assert (claims.user_id, claims.session_id) == ("u1", "s1")

    new_token, _ = _issuer(rotated).issue(user_id="u2", role="buyer", session_id="s2")
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.signing_kid != old_ring.signing_kid
    with pytest.raises(InvalidToken):
        _issuer(old_ring).verify(new_token)  # the old ring never learned the new key

    kids = [key["kid"] for key in rotated.jwks()["keys"]]
    assert kids == [rotated.signing_kid, old_ring.signing_kid]


def test_escaped_newlines_and_public_only_blocks_are_accepted():
    signing, retired = generate_private_pem(), generate_private_pem()
    retired_public = (
        serialization.load_pem_private_key(retired.encode(), None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    ring = KeyRing.from_pem((signing + retired_public).replace("\n", "\\n"))
    old_token, _ = _issuer(KeyRing.from_pem(retired)).issue(user_id="u", role="buyer", session_id="s")
    assert _issuer(ring).verify(old_token).user_id == "u"
    assert len(ring.jwks()["keys"]) == 2


def test_non_ed25519_keys_and_public_only_rings_are_refused():
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        KeyRing.from_pem(rsa_pem)
    with pytest.raises(ValueError, match="no private key"):
        KeyRing.from_pem("")


def test_rotation_keeps_existing_logins_working_across_app_instances(settings, redis, jobs, user):
    old_pem, new_pem = generate_private_pem(), generate_private_pem()
    before = testing.TestClient(
        create_app(
            settings,
            init_db=False,
            services=build_services(settings, redis=redis, jobs=jobs, keys=KeyRing.from_pem(old_pem)),
        )
    )
    after = testing.TestClient(
        create_app(
            settings,
            init_db=False,
            services=build_services(settings, redis=redis, jobs=jobs, keys=KeyRing.from_pem(new_pem + old_pem)),
        )
    )

    pair = before.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD}).json
    assert after.simulate_get("/v1/me", headers=bearer(pair)).status_code == 200

    jwks = after.simulate_get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert "public" in jwks.headers["cache-control"]
    keys = {key["kid"]: key for key in jwks.json["keys"]}
    assert set(keys) == {KeyRing.from_pem(old_pem).signing_kid, KeyRing.from_pem(new_pem).signing_kid}
    for kid, key in keys.items():
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
        assert len(raw) == 32
        assert "d" not in key  # never the private part
        # The kid is the RFC 7638 thumbprint of the key it names.
        assert thumbprint(Ed25519PublicKey.from_public_bytes(raw)) == kid

    # A client can verify a freshly issued token with nothing but the published JWKS.
    fresh = after.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD}).json
    kid = jwt.get_unverified_header(fresh["access_token"])["kid"]
    public = jwt.PyJWK(keys[kid]).key
    claims = jwt.decode(fresh["access_token"], public, algorithms=["EdDSA"], audience="hearth-api", issuer="hearth")
    assert claims["sub"] == str(user.id)
    # The pre-rotation instance does not know the new key.
    assert_problem(before.simulate_get("/v1/me", headers=bearer(fresh)), 401)
