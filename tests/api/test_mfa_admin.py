"""MFA_REQUIRED_ROLES: admin powers need a session that proved a second factor."""

from __future__ import annotations

import jwt
import pyotp
import pytest

from models.jobs import Job
from settings import Settings, SettingsError
from tests.api.conftest import assert_problem, bearer
from tests.factories import PASSWORD, enroll_totp, fresh_totp_code


def aal(pair: dict) -> str:
    return jwt.decode(pair["access_token"], options={"verify_signature": False})["aal"]


def password_only(client, user) -> dict:
    resp = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return resp.json


def test_an_admin_without_a_factor_is_told_to_enroll_and_can(client, admin):
    pair = password_only(client, admin)
    assert aal(pair) == "aal1"
    body = assert_problem(client.simulate_get("/v1/admin/users", headers=bearer(pair)), 403)
    assert body["type"].endswith("/mfa-required")
    assert "enroll" in body["detail"]
    # Every admin route says so, and the account's own routes still work.
    assert_problem(client.simulate_get("/v1/admin/audit", headers=bearer(pair)), 403)
    assert client.simulate_get("/v1/me", headers=bearer(pair)).status_code == 200
    # Enrollment is open to them, and activating it raises this session to aal2.
    enrolled = client.simulate_post("/v1/auth/mfa/totp", headers=bearer(pair), json={})
    assert enrolled.status_code == 201, enrolled.text
    activated = client.simulate_post(
        f"/v1/auth/mfa/{enrolled.json['id']}/activate",
        headers=bearer(pair),
        json={"code": pyotp.TOTP(enrolled.json["secret"]).now()},
    )
    assert activated.status_code == 200, activated.text
    raised = activated.json["tokens"]
    assert aal(raised) == "aal2"
    assert client.simulate_get("/v1/admin/users", headers=bearer(raised)).status_code == 200


def test_an_admin_with_a_factor_but_a_password_only_session_is_told_to_verify(client, admin, settings):
    pair = password_only(client, admin)
    enroll_totp(admin, settings.secret_key)
    body = assert_problem(client.simulate_get("/v1/admin/users", headers=bearer(pair)), 403)
    assert body["type"].endswith("/mfa-required") and "verify" in body["detail"]
    challenge = client.simulate_post("/v1/auth/mfa/challenge", headers=bearer(pair), json={}).json["challenge_id"]
    raised = client.simulate_post(
        "/v1/auth/mfa/verify",
        headers=bearer(pair),
        json={"challenge_id": challenge, "code": fresh_totp_code(admin, settings.secret_key)},
    )
    assert raised.status_code == 200, raised.text
    assert client.simulate_get("/v1/admin/users", headers=bearer(raised.json)).status_code == 200


def test_an_aal1_admin_has_no_admin_powers_on_shared_routes_either(client, admin, user, login):
    # A job of someone else: an admin may read it at aal2, not below.
    job = Job.create(kind="exports.build_export", queue="default", owner=user.id, input={})
    pair = password_only(client, admin)
    assert_problem(client.simulate_get(f"/v1/jobs/{job.id}", headers=bearer(pair)), 404)
    assert client.simulate_get(f"/v1/jobs/{job.id}", headers=bearer(login(admin))).status_code == 200


def test_an_admins_refresh_keeps_aal2(client, admin, login):
    pair = login(admin)  # the test login enrolls admins and completes the challenge
    assert aal(pair) == "aal2"
    refreshed = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert aal(refreshed.json) == "aal2"
    assert client.simulate_get("/v1/admin/users", headers=bearer(refreshed.json)).status_code == 200


def test_mfa_required_roles_names_known_roles(tmp_path):
    with pytest.raises(SettingsError, match="MFA_REQUIRED_ROLES"):
        Settings.from_env({"MFA_REQUIRED_ROLES": "admin,root", "HEARTH_VAR_DIR": str(tmp_path)})
    settings = Settings.from_env({"MFA_REQUIRED_ROLES": "admin,agent", "HEARTH_VAR_DIR": str(tmp_path)})
    assert settings.mfa_required_roles == ("admin", "agent")
    assert Settings.from_env({"HEARTH_VAR_DIR": str(tmp_path)}).mfa_required_roles == ("admin",)
