"""Forgotten passwords: an answer that reveals nothing, and a one-hour single-use reset link."""

from __future__ import annotations

import datetime

from models.accounts import AccountToken, AuthSession
from models.base import utcnow
from models.jobs import Job
from tests.api.conftest import assert_problem, bearer
from tests.factories import PASSWORD

NEW_PASSWORD = "a fresh and long passphrase"


def _forgot(client, email):
    return client.simulate_post("/v1/auth/password/forgot", json={"email": email})


def test_forgot_answers_the_same_for_known_and_unknown_addresses(client, jobs, outbox, user):
    before = Job.select().count()
    known = _forgot(client, user.email.upper())
    after_known = Job.select().count()
    unknown = _forgot(client, "nobody-here@example.com")
    after_unknown = Job.select().count()

    assert known.status_code == unknown.status_code == 202
    assert known.json == unknown.json
    assert known.headers.get("location") == unknown.headers.get("location")
    # The same work for both: exactly one job row and one enqueue each.
    assert after_known - before == 1
    assert after_unknown - after_known == 1
    assert len(jobs.submitted) == 2

    assert jobs.run_pending() == 2
    messages = outbox.messages()
    assert [m["To"] for m in messages] == [user.email]
    assert "reset" in messages[0]["Subject"].lower()


def test_reset_with_the_mailed_token_changes_the_password_and_ends_every_session(client, jobs, outbox, user, login):
    first, second = login(user), login(user)
    _forgot(client, user.email)
    jobs.run_pending()
    token = outbox.token_for(user.email)

    weak = client.simulate_post("/v1/auth/password/reset", json={"token": token, "password": "password123"})
    assert_problem(weak, 422, field="body.password")
    # The refused attempt did not use the token up, nor end any session.
    assert client.simulate_get("/v1/me", headers=bearer(first)).status_code == 200

    resp = client.simulate_post("/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert resp.status_code == 204, resp.text
    again = client.simulate_post("/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD + "!"})
    assert_problem(again, 400)

    for pair in (first, second):
        assert_problem(client.simulate_get("/v1/me", headers=bearer(pair)), 401)
        assert_problem(client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401)
    assert AuthSession.select().where((AuthSession.user == user.id) & AuthSession.revoked_at.is_null()).count() == 0
    assert_problem(client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD}), 401)
    assert (
        client.simulate_post("/v1/auth/login", json={"email": user.email, "password": NEW_PASSWORD}).status_code == 200
    )


def test_reset_token_lives_one_hour_and_is_refused_after(client, jobs, outbox, user):
    _forgot(client, user.email)
    jobs.run_pending()
    token = outbox.token_for(user.email)
    row = AccountToken.get(AccountToken.purpose == "password_reset")
    lifetime = (row.expires_at - utcnow()).total_seconds()
    assert 3600 - 60 < lifetime <= 3600

    AccountToken.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(
        AccountToken.token_hash == row.token_hash
    ).execute()
    resp = client.simulate_post("/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert_problem(resp, 400)
    assert client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD}).status_code == 200


def test_a_verification_token_cannot_reset_a_password(client, jobs, outbox):
    client.simulate_post(
        "/v1/auth/register", json={"email": "lin@example.com", "password": "long enough phrase", "full_name": "Lin"}
    )
    jobs.run_pending()
    token = outbox.token_for("lin@example.com")
    resp = client.simulate_post("/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert_problem(resp, 400)


def test_no_reset_email_for_a_banned_account(client, jobs, outbox):
    from tests.factories import make_user

    banned = make_user(banned=True)
    assert _forgot(client, banned.email).status_code == 202
    jobs.run_pending()
    assert outbox.messages() == []


def _reset_tokens(client, jobs, outbox, user, count):
    tokens = []
    for _ in range(count):
        _forgot(client, user.email)
        jobs.run_pending()
        tokens.append(outbox.token_for(user.email))
    assert len(set(tokens)) == count
    return tokens


def test_a_reset_voids_every_other_outstanding_reset_link(client, jobs, outbox, user):
    first, second = _reset_tokens(client, jobs, outbox, user, 2)
    assert (
        client.simulate_post("/v1/auth/password/reset", json={"token": second, "password": NEW_PASSWORD}).status_code
        == 204
    )
    # The older link was mailed before the reset; it must not reset the password again.
    assert_problem(
        client.simulate_post("/v1/auth/password/reset", json={"token": first, "password": "attacker chosen phrase"}),
        400,
    )
    assert (
        client.simulate_post("/v1/auth/login", json={"email": user.email, "password": NEW_PASSWORD}).status_code == 200
    )


def test_changing_the_password_voids_outstanding_reset_links(client, jobs, outbox, user, login):
    [token] = _reset_tokens(client, jobs, outbox, user, 1)
    resp = client.simulate_post(
        "/v1/me/password",
        headers=bearer(login(user)),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert resp.status_code == 204
    assert_problem(
        client.simulate_post("/v1/auth/password/reset", json={"token": token, "password": "attacker chosen phrase"}),
        400,
    )
