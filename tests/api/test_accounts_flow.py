"""The account lifecycle over HTTP, as a frontend would drive it."""

from __future__ import annotations

import datetime

from api.resources.auth import REGISTER_ANSWER, issue_tokens
from models import sessions
from models.accounts import AccountToken, AuthSession, User
from models.audit import AuditEntry
from models.base import utcnow
from models.db import db
from models.jobs import Job
from tests.api.conftest import assert_problem, bearer
from tests.factories import PASSWORD, make_user


def test_register_verify_login_me_refresh_logout(client, jobs, outbox):
    resp = client.simulate_post(
        "/v1/auth/register",
        json={
            "email": "Ada@Example.com",
            "password": "analytical engine 1843",
            "full_name": "Ada Lovelace",
            "role": "seller",
        },
    )
    assert resp.status_code == 202, resp.text
    assert resp.json == {"status": "accepted", "detail": REGISTER_ANSWER}
    created = User.get(User.email == "ada@example.com")
    assert (created.email_verified_at, created.role) == (None, "seller")

    assert outbox.messages() == []  # the worker sends it, not the request
    assert jobs.run_pending() == 1
    token = outbox.token_for("ada@example.com")

    resp = client.simulate_post("/v1/auth/verify-email", json={"token": token})
    assert resp.status_code == 204, resp.text
    again = client.simulate_post("/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400  # single use
    assert User.get(User.email == "ada@example.com").email_verified_at is not None

    resp = client.simulate_post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "analytical engine 1843"}
    )
    assert resp.status_code == 200, resp.text
    pair = resp.json
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    me = client.simulate_get("/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json["email_verified"] is True
    assert me.json["full_name"] == "Ada Lovelace"

    refreshed = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.json["refresh_token"] != pair["refresh_token"]

    # Replaying the consumed refresh token ends the whole session family.
    replay = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status_code == 401
    newest = client.simulate_post("/v1/auth/refresh", json={"refresh_token": refreshed.json["refresh_token"]})
    assert newest.status_code == 401
    me = client.simulate_get("/v1/me", headers={"Authorization": f"Bearer {refreshed.json['access_token']}"})
    assert me.status_code == 401


def _register(client, email="Grace@Example.com", password="compiler pioneer 1952", **extra):
    body = {"email": email, "password": password, "full_name": "Grace Hopper", **extra}
    return client.simulate_post("/v1/auth/register", json=body)


def test_register_queues_exactly_one_verification_job_and_audits(client, jobs, outbox):
    resp = _register(client)
    assert resp.status_code == 202, resp.text
    assert "location" not in resp.headers
    user = User.get(User.email == "grace@example.com")
    assert user.role == "buyer"  # the default self-service role
    assert Job.select().where((Job.owner == user.id) & (Job.kind == "accounts.send_verification_email")).count() == 1
    assert len(jobs.submitted) == 1
    assert (
        AuditEntry.select()
        .where((AuditEntry.target_id == str(user.id)) & (AuditEntry.action == "user.register"))
        .count()
        == 1
    )
    assert jobs.run_pending() == 1
    [message] = outbox.messages()
    assert message["To"] == "grace@example.com"
    assert outbox.token_for("grace@example.com")


def test_expired_verification_token_is_refused(client, jobs, outbox):
    assert _register(client).status_code == 202
    jobs.run_pending()
    token = outbox.token_for("grace@example.com")
    AccountToken.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(
        AccountToken.purpose == "verify_email"
    ).execute()
    assert_problem(client.simulate_post("/v1/auth/verify-email", json={"token": token}), 400)
    assert User.get(User.email == "grace@example.com").email_verified_at is None


def test_unknown_verification_token_is_refused(client):
    resp = client.simulate_post("/v1/auth/verify-email", json={"token": "x" * 43})
    assert_problem(resp, 400)


def _unverified_session(services, user) -> dict:
    """Headers of a session whose account is not verified: logging in needs a verified address, so
    only sessions started before that rule (or by an operator) are like this."""
    with db.atomic():
        session, refresh = sessions.start_session(
            user, ttl=services.settings.refresh_token_ttl, user_agent=None, ip=None
        )
    return {"Authorization": f"Bearer {issue_tokens(services, user, session, refresh)['access_token']}"}


def test_an_unverified_account_cannot_log_in_and_answers_like_a_wrong_password(client, jobs, outbox):
    # Registration answers a taken address like a new one; logging in with the password just
    # registered must not tell which it was, so an unverified account answers like a wrong password.
    assert _register(client).status_code == 202
    right = client.simulate_post(
        "/v1/auth/login", json={"email": "grace@example.com", "password": "compiler pioneer 1952"}
    )
    wrong = client.simulate_post("/v1/auth/login", json={"email": "grace@example.com", "password": "not it at all"})
    assert (right.status_code, right.headers.get("www-authenticate")) == (401, wrong.headers.get("www-authenticate"))
    assert {k: v for k, v in right.json.items() if k != "request_id"} == {
        k: v for k, v in wrong.json.items() if k != "request_id"
    }
    jobs.run_pending()
    assert (
        client.simulate_post("/v1/auth/verify-email", json={"token": outbox.token_for("grace@example.com")}).status_code
        == 204
    )
    assert (
        client.simulate_post(
            "/v1/auth/login", json={"email": "grace@example.com", "password": "compiler pioneer 1952"}
        ).status_code
        == 200
    )


def test_resend_verification_sends_a_new_working_link(client, jobs, outbox, services):
    user = make_user(verified=False)
    headers = _unverified_session(services, user)
    resp = client.simulate_post("/v1/auth/verify-email/resend", headers=headers)
    assert resp.status_code == 202, resp.text
    job_id = resp.headers["location"].rsplit("/", 1)[1]
    assert Job.get_by_id(job_id).kind == "accounts.send_verification_email"
    assert jobs.run_pending() == 1
    token = outbox.token_for(user.email)
    assert client.simulate_post("/v1/auth/verify-email", json={"token": token}).status_code == 204
    me = client.simulate_get("/v1/me", headers=headers)
    assert me.json["email_verified"] is True
    # Once verified there is nothing to resend.
    assert_problem(client.simulate_post("/v1/auth/verify-email/resend", headers=headers), 409)
    assert jobs.submitted == []


def test_resend_verification_needs_a_login(client):
    assert_problem(client.simulate_post("/v1/auth/verify-email/resend"), 401)


def test_verifying_updates_a_cached_profile(client, jobs, outbox, services):
    assert _register(client).status_code == 202
    user = User.get(User.email == "grace@example.com")
    headers = _unverified_session(services, user)
    assert client.simulate_get("/v1/me", headers=headers).json["email_verified"] is False
    jobs.run_pending()
    token = outbox.token_for(user.email)
    assert client.simulate_post("/v1/auth/verify-email", json={"token": token}).status_code == 204
    assert client.simulate_get("/v1/me", headers=headers).json["email_verified"] is True


def test_refresh_rotation_gives_working_tokens_and_consumes_the_old(client, user, login):
    pair = login(user)
    first = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert first.status_code == 200, first.text
    assert first.json["user"]["id"] == str(user.id)
    assert client.simulate_get("/v1/me", headers=bearer(first.json)).status_code == 200
    second = client.simulate_post("/v1/auth/refresh", json={"refresh_token": first.json["refresh_token"]})
    assert second.status_code == 200
    assert len({pair["refresh_token"], first.json["refresh_token"], second.json["refresh_token"]}) == 3
    # Still one session: rotation does not start new logins.
    assert AuthSession.select().where(AuthSession.user == user.id).count() == 1


def test_unknown_refresh_token_is_refused(client):
    assert_problem(client.simulate_post("/v1/auth/refresh", json={"refresh_token": "y" * 43}), 401)


def test_logout_ends_only_this_session(client, user, login):
    mine, other = login(user), login(user)
    resp = client.simulate_post("/v1/auth/logout", headers=bearer(mine))
    assert resp.status_code == 204, resp.text
    assert_problem(client.simulate_get("/v1/me", headers=bearer(mine)), 401)
    assert_problem(client.simulate_post("/v1/auth/refresh", json={"refresh_token": mine["refresh_token"]}), 401)
    assert client.simulate_get("/v1/me", headers=bearer(other)).status_code == 200


def test_logout_accepts_an_empty_json_body(client, user, login):
    pair = login(user)
    resp = client.simulate_post("/v1/auth/logout", headers=bearer(pair), json={})
    assert resp.status_code == 204, resp.text
    assert_problem(client.simulate_get("/v1/me", headers=bearer(pair)), 401)


def test_logout_all_ends_every_session(client, user, login):
    first, second = login(user), login(user)
    resp = client.simulate_post("/v1/auth/logout-all", headers=bearer(first))
    assert resp.status_code == 204, resp.text
    for pair in (first, second):
        assert_problem(client.simulate_get("/v1/me", headers=bearer(pair)), 401)
        assert_problem(client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401)
    assert AuthSession.select().where((AuthSession.user == user.id) & AuthSession.revoked_at.is_null()).count() == 0
    # Logging in again works.
    assert client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD}).status_code == 200
