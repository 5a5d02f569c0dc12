"""The Supabase-compatible /auth/v1: GoTrue's shapes on Hearth's own accounts, sessions and lockout."""

from __future__ import annotations

import datetime
import time
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
from falcon import testing

from api.app import build_services, create_app
from models.accounts import AuthSession, User
from models.base import utcnow
from models.identities import UserIdentity
from settings import DEVELOPMENT_SUPABASE_ANON_KEY
from tests.api.conftest import bearer
from tests.conftest import make_settings
from tests.factories import PASSWORD, make_user

KEY = {"apikey": DEVELOPMENT_SUPABASE_ANON_KEY}
V2024 = {**KEY, "X-Supabase-Api-Version": "2024-01-01"}
NEW_PASSWORD = "another long passphrase here"


def sign_in(client, email, password=PASSWORD, headers=V2024):
    return client.simulate_post(
        "/auth/v1/token",
        params={"grant_type": "password"},
        json={"email": email, "password": password},
        headers=headers,
    )


def auth(session: dict, headers=V2024) -> dict:
    return {**headers, "Authorization": f"Bearer {session['access_token']}"}


def assert_gotrue(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json["code"] == code, resp.json
    assert isinstance(resp.json["message"], str)
    assert resp.headers["x-supabase-api-version"] == "2024-01-01"
    return resp.json


def test_password_grant_answers_a_gotrue_session_whose_token_also_works_on_v1(client, services, user):
    resp = sign_in(client, user.email)
    assert resp.status_code == 200, resp.text
    session = resp.json
    assert session["token_type"] == "bearer"
    assert session["expires_in"] == services.tokens.ttl
    assert abs(session["expires_at"] - (time.time() + services.tokens.ttl)) < 30
    person = session["user"]
    assert (person["id"], person["aud"], person["role"], person["email"]) == (
        str(user.id),
        "authenticated",
        "authenticated",
        user.email,
    )
    assert person["app_metadata"]["providers"] == ["email"]
    assert person["identities"][0]["provider"] == "email"
    assert person["email_confirmed_at"] and person["confirmed_at"] and person["last_sign_in_at"]
    assert person["is_anonymous"] is False

    header = jwt.get_unverified_header(session["access_token"])
    assert header["alg"] == "ES256" and header["kid"]
    claims = jwt.decode(session["access_token"], options={"verify_signature": False})
    assert claims["aud"] == claims["role"] == "authenticated"
    assert claims["session_id"] == claims["sid"]
    assert claims["aal"] == "aal1" and claims["amr"][0]["method"] == "password"
    assert claims["email"] == user.email and claims["is_anonymous"] is False
    assert "user_metadata" in claims and "app_metadata" in claims

    # One session model: the compat token opens /v1, and a /v1 token opens /auth/v1.
    assert client.simulate_get("/v1/me", headers=bearer(session)).status_code == 200
    v1 = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD}).json
    mine = client.simulate_get("/auth/v1/user", headers=auth(v1))
    assert mine.status_code == 200 and mine.json["id"] == str(user.id)


def test_jwks_on_auth_v1_holds_the_es256_key_that_verifies_the_token(client, user):
    session = sign_in(client, user.email).json
    keys = client.simulate_get("/auth/v1/.well-known/jwks.json", headers=KEY).json["keys"]
    kid = jwt.get_unverified_header(session["access_token"])["kid"]
    key = next(k for k in keys if k["kid"] == kid)
    assert (key["kty"], key["crv"], key["alg"]) == ("EC", "P-256", "ES256")
    public = jwt.PyJWK(key).key
    assert jwt.decode(session["access_token"], public, algorithms=["ES256"], audience="authenticated")["sub"] == str(
        user.id
    )


def test_wrong_password_unknown_and_unverified_accounts_all_answer_invalid_credentials(client):
    unverified = make_user(verified=False)
    for email, password in (
        (make_user().email, "wrong password!"),
        ("nobody@example.com", PASSWORD),
        (unverified.email, PASSWORD),
    ):
        body = assert_gotrue(sign_in(client, email, password), 400, "invalid_credentials")
        assert body["message"] == "Invalid login credentials"


def test_errors_without_an_api_version_use_the_legacy_shape(client):
    resp = sign_in(client, "nobody@example.com", headers=KEY)
    assert resp.status_code == 400
    assert resp.json == {"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}
    assert resp.headers["x-sb-error-code"] == "invalid_credentials"


def test_banned_users_and_lockout(client, settings):
    banned = make_user(banned=True)
    assert_gotrue(sign_in(client, banned.email), 400, "user_banned")
    victim = make_user()
    for _ in range(settings.login_lockout_threshold):
        sign_in(client, victim.email, "not the password")
    locked = assert_gotrue(sign_in(client, victim.email), 429, "over_request_rate_limit")
    assert (
        locked
        and int(
            client.simulate_post(
                "/auth/v1/token?grant_type=password", json={"email": victim.email, "password": PASSWORD}, headers=V2024
            ).headers["retry-after"]
        )
        > 0
    )


def test_refresh_rotates_and_a_replayed_token_ends_the_session(client, user):
    first = sign_in(client, user.email).json
    resp = client.simulate_post(
        "/auth/v1/token?grant_type=refresh_token", json={"refresh_token": first["refresh_token"]}, headers=V2024
    )
    assert resp.status_code == 200, resp.text
    second = resp.json
    assert second["refresh_token"] != first["refresh_token"] and second["user"]["id"] == str(user.id)
    replay = client.simulate_post(
        "/auth/v1/token?grant_type=refresh_token", json={"refresh_token": first["refresh_token"]}, headers=V2024
    )
    assert_gotrue(replay, 400, "refresh_token_already_used")
    # The replay ended the session: its newest tokens die too.
    assert_gotrue(client.simulate_get("/auth/v1/user", headers=auth(second)), 403, "session_not_found")
    unknown = client.simulate_post(
        "/auth/v1/token?grant_type=refresh_token", json={"refresh_token": "x" * 43}, headers=V2024
    )
    assert_gotrue(unknown, 400, "refresh_token_not_found")
    assert_gotrue(
        client.simulate_post("/auth/v1/token?grant_type=magic", json={}, headers=V2024), 400, "validation_failed"
    )


def test_missing_or_wrong_apikey_is_refused_like_the_gateway(client, user):
    missing = client.simulate_get("/auth/v1/settings")
    assert missing.status_code == 401 and missing.json["message"] == "No API key found in request"
    wrong = client.simulate_get("/auth/v1/settings", headers={"apikey": "nope"})
    assert wrong.status_code == 401 and wrong.json["message"] == "Invalid API key"
    settings = client.simulate_get("/auth/v1/settings", headers=KEY)
    assert settings.status_code == 200 and settings.json["external"]["email"] is True
    assert settings.json["mailer_autoconfirm"] is False


def test_bad_bodies_and_tokens_are_gotrue_errors_never_500(client, user):
    not_json = client.simulate_post(
        "/auth/v1/signup", body="{nope", headers={**V2024, "Content-Type": "application/json"}
    )
    assert_gotrue(not_json, 400, "bad_json")
    wrong_type = client.simulate_post("/auth/v1/signup", json={"email": 5, "password": "x"}, headers=V2024)
    assert_gotrue(wrong_type, 400, "validation_failed")
    assert_gotrue(
        client.simulate_post("/auth/v1/signup", json={"email": "a@b.co"}, headers=V2024), 400, "validation_failed"
    )
    assert_gotrue(client.simulate_get("/auth/v1/user", headers=V2024), 401, "no_authorization")
    assert_gotrue(
        client.simulate_get("/auth/v1/user", headers={**V2024, "Authorization": "Bearer abc.def.ghi"}), 403, "bad_jwt"
    )
    assert_gotrue(client.simulate_get("/auth/v1/nothing-here", headers=V2024), 404, "not_found")
    assert_gotrue(
        client.simulate_post("/auth/v1/logout?scope=everyone", headers=auth(sign_in(client, user.email).json)),
        400,
        "validation_failed",
    )


def test_signup_answers_the_same_shape_for_new_and_taken_addresses(client, jobs, outbox, user):
    new = client.simulate_post(
        "/auth/v1/signup",
        json={"email": "fresh@example.com", "password": NEW_PASSWORD, "data": {"full_name": "Fresh Person", "x": 1}},
        headers=V2024,
    )
    taken = client.simulate_post(
        "/auth/v1/signup", json={"email": user.email, "password": NEW_PASSWORD, "data": {}}, headers=V2024
    )
    assert new.status_code == taken.status_code == 200
    assert set(new.json) == set(taken.json)
    assert new.json["identities"] == taken.json["identities"] == []
    assert "access_token" not in new.json
    created = User.get(User.email == "fresh@example.com")
    assert created.full_name == "Fresh Person" and created.user_metadata == {"full_name": "Fresh Person", "x": 1}
    weak = client.simulate_post("/auth/v1/signup", json={"email": "w@example.com", "password": "short"}, headers=V2024)
    assert assert_gotrue(weak, 422, "weak_password")["weak_password"]["reasons"]

    jobs.run_pending()
    token = outbox.token_for("fresh@example.com")
    mail = [m for m in outbox.messages() if m["To"] == "fresh@example.com"][-1].as_string()
    assert "/auth/v1/verify?token=3D" in mail or "/auth/v1/verify?token=" in mail
    verified = client.simulate_post("/auth/v1/verify", json={"type": "signup", "token_hash": token}, headers=V2024)
    assert verified.status_code == 200, verified.text
    assert verified.json["user"]["email_confirmed_at"] and verified.json["access_token"]
    assert_gotrue(
        client.simulate_post("/auth/v1/verify", json={"type": "signup", "token_hash": token}, headers=V2024),
        403,
        "otp_expired",
    )
    assert sign_in(client, "fresh@example.com", NEW_PASSWORD).status_code == 200


def test_recovery_by_verify_otp_then_a_new_password_without_the_current_one(client, jobs, outbox, user):
    other = sign_in(client, user.email).json
    assert client.simulate_post("/auth/v1/recover", json={"email": user.email}, headers=V2024).json == {}
    assert client.simulate_post("/auth/v1/recover", json={"email": "nobody@example.com"}, headers=V2024).json == {}
    jobs.run_pending()
    token = outbox.token_for(user.email)
    wrong_mail = client.simulate_post(
        "/auth/v1/verify", json={"type": "recovery", "token": token, "email": "else@example.com"}, headers=V2024
    )
    assert_gotrue(wrong_mail, 403, "otp_expired")
    resp = client.simulate_post(
        "/auth/v1/verify", json={"type": "recovery", "token": token, "email": user.email}, headers=V2024
    )
    assert resp.status_code == 200, resp.text
    recovery = resp.json
    assert jwt.decode(recovery["access_token"], options={"verify_signature": False})["amr"][0]["method"] == "recovery"
    changed = client.simulate_put("/auth/v1/user", json={"password": NEW_PASSWORD}, headers=auth(recovery))
    assert changed.status_code == 200, changed.text
    assert sign_in(client, user.email, NEW_PASSWORD).status_code == 200
    # Other sessions ended with the password change; this one goes on.
    assert_gotrue(client.simulate_get("/auth/v1/user", headers=auth(other)), 403, "session_not_found")
    assert client.simulate_get("/auth/v1/user", headers=auth(recovery)).status_code == 200


def test_emailed_recovery_link_redirects_with_the_session_in_the_fragment(client, jobs, outbox, user, settings):
    origin = settings.pages_url
    client.simulate_post(
        "/auth/v1/recover", json={"email": user.email}, params={"redirect_to": f"{origin}/reset"}, headers=V2024
    )
    jobs.run_pending()
    token = outbox.token_for(user.email)
    link = client.simulate_get(
        "/auth/v1/verify", params={"token": token, "type": "recovery", "redirect_to": f"{origin}/reset"}
    )
    assert link.status_code == 303
    target = urlparse(link.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{origin}/reset"
    fragment = parse_qs(target.fragment)
    assert fragment["type"] == ["recovery"] and fragment["token_type"] == ["bearer"]
    assert {"access_token", "refresh_token", "expires_at", "expires_in"} <= set(fragment)
    used = client.simulate_get("/auth/v1/verify", params={"token": token, "type": "recovery"})
    assert parse_qs(urlparse(used.headers["location"]).fragment)["error_code"] == ["otp_expired"]


def test_redirects_go_only_to_allowed_places(client, jobs, outbox, user, settings):
    client.simulate_post("/auth/v1/recover", json={"email": user.email}, headers=V2024)
    jobs.run_pending()
    token = outbox.token_for(user.email)
    resp = client.simulate_get(
        "/auth/v1/verify", params={"token": token, "type": "recovery", "redirect_to": "https://evil.example/steal"}
    )
    assert resp.status_code == 303
    assert resp.headers["location"].startswith(settings.pages_url + "/#")


def test_put_user_data_and_password_rules(client, user):
    session = sign_in(client, user.email).json
    resp = client.simulate_put(
        "/auth/v1/user", json={"data": {"full_name": "New Name", "theme": "dark"}}, headers=auth(session)
    )
    assert resp.status_code == 200, resp.text
    assert resp.json["user_metadata"] == {"full_name": "New Name", "theme": "dark"}
    assert client.simulate_get("/v1/me", headers=bearer(session)).json["full_name"] == "New Name"
    dropped = client.simulate_put("/auth/v1/user", json={"data": {"theme": None}}, headers=auth(session))
    assert "theme" not in dropped.json["user_metadata"]

    # An older session needs the current password to set a new one.
    AuthSession.update(created_at=utcnow() - datetime.timedelta(hours=1)).execute()
    no_current = client.simulate_put("/auth/v1/user", json={"password": NEW_PASSWORD}, headers=auth(session))
    assert_gotrue(no_current, 400, "current_password_required")
    wrong = client.simulate_put(
        "/auth/v1/user", json={"password": NEW_PASSWORD, "current_password": "nope"}, headers=auth(session)
    )
    assert_gotrue(wrong, 400, "current_password_mismatch")
    same = client.simulate_put(
        "/auth/v1/user", json={"password": PASSWORD, "current_password": PASSWORD}, headers=auth(session)
    )
    assert_gotrue(same, 422, "same_password")
    weak = client.simulate_put(
        "/auth/v1/user", json={"password": "short", "current_password": PASSWORD}, headers=auth(session)
    )
    assert_gotrue(weak, 422, "weak_password")
    ok = client.simulate_put(
        "/auth/v1/user", json={"password": NEW_PASSWORD, "current_password": PASSWORD}, headers=auth(session)
    )
    assert ok.status_code == 200, ok.text
    assert_gotrue(
        client.simulate_put("/auth/v1/user", json={"email": "other@example.com"}, headers=auth(session)),
        422,
        "email_change_not_supported",
    )
    assert_gotrue(
        client.simulate_put("/auth/v1/user", json={"app_metadata": {"role": "admin"}}, headers=auth(session)),
        403,
        "not_admin",
    )


@pytest.mark.parametrize("scope", ["local", "global", "others"])
def test_logout_scopes(client, user, scope):
    this, other = sign_in(client, user.email).json, sign_in(client, user.email).json
    resp = client.simulate_post("/auth/v1/logout", params={"scope": scope}, headers=auth(this))
    assert resp.status_code == 204, resp.text
    this_alive = client.simulate_get("/auth/v1/user", headers=auth(this)).status_code == 200
    other_alive = client.simulate_get("/auth/v1/user", headers=auth(other)).status_code == 200
    assert (this_alive, other_alive) == {"local": (False, True), "global": (False, False), "others": (True, False)}[
        scope
    ]


def test_imported_user_with_a_bcrypt_hash_and_an_identity(client):
    import bcrypt

    stored = bcrypt.hashpw(b"imported pass phrase", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2a$")
    person = User.create(
        email="imported@example.com",
        password_hash=stored,
        full_name="Imported",
        role="buyer",
        email_verified_at=utcnow(),
        user_metadata={"plan": "pro"},
    )
    UserIdentity.create(
        user=person.id,
        provider="email",
        provider_id=str(person.id),
        identity_data={"email": person.email, "sub": str(person.id)},
        email=person.email,
    )
    UserIdentity.create(
        user=person.id,
        provider="google",
        provider_id="g-123",
        identity_data={"email": person.email},
        email=person.email,
    )
    resp = sign_in(client, person.email, "imported pass phrase")
    assert resp.status_code == 200, resp.text
    shown = resp.json["user"]
    assert [i["provider"] for i in shown["identities"]] == ["email", "google"]
    assert shown["app_metadata"]["providers"] == ["email", "google"]
    assert shown["user_metadata"]["plan"] == "pro"
    assert User.get_by_id(person.id).password_hash.startswith("$argon2")  # rehashed on the way in


def test_cors_preflight_allows_the_headers_supabase_js_sends(database, tmp_path, redis_prefix, jobs):
    settings = make_settings(database, tmp_path, redis_prefix=redis_prefix, cors_origins=("https://app.hearth.test",))
    client = testing.TestClient(create_app(settings, services=build_services(settings, jobs=jobs), init_db=False))
    asked = "apikey,authorization,x-client-info,x-supabase-api-version,content-type"
    preflight = client.simulate_options(
        "/auth/v1/token",
        headers={
            "Origin": "https://app.hearth.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": asked,
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.hearth.test"
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert set(asked.split(",")) <= allowed


def test_compat_api_can_be_switched_off(database, tmp_path, redis_prefix, jobs):
    settings = make_settings(database, tmp_path, redis_prefix=redis_prefix, supabase_compat="off")
    client = testing.TestClient(create_app(settings, services=build_services(settings, jobs=jobs), init_db=False))
    resp = client.simulate_get("/auth/v1/settings", headers=KEY)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
