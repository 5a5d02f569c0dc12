"""``/v1/me``: profile reads (cached in Redis), profile edits, password change and sessions."""

from __future__ import annotations

from models.accounts import AuthSession, User
from models.audit import AuditEntry
from tests.api.conftest import assert_problem, bearer
from tests.factories import PASSWORD, make_user


def test_second_read_comes_from_the_cache_and_a_patch_refreshes_it(client, user, auth_headers, redis, services):
    headers = auth_headers(user)
    first = client.simulate_get("/v1/me", headers=headers)
    assert first.status_code == 200
    assert first.json["email"] == user.email
    assert redis.get(services.sessions.profile_key(str(user.id))) is not None

    # A change made behind the API's back is not seen: the second read is the cached one.
    User.update(full_name="Changed Directly").where(User.id == user.id).execute()
    second = client.simulate_get("/v1/me", headers=headers)
    assert second.json == first.json

    patched = client.simulate_patch("/v1/me", headers=headers, json={"full_name": "  Ada King  "})
    assert patched.status_code == 200, patched.text
    assert patched.json["full_name"] == "Ada King"
    third = client.simulate_get("/v1/me", headers=headers)
    assert third.status_code == 200
    assert third.json["full_name"] == "Ada King"
    assert third.headers["content-type"].startswith("application/json")
    # And the cache is warm again with the new value.
    assert client.simulate_get("/v1/me", headers=headers).json == third.json


def test_patch_me_writes_an_audit_row_with_before_and_after(client, user, auth_headers):
    headers = auth_headers(user)
    resp = client.simulate_patch("/v1/me", headers=headers, json={"phone": "+14155550123"})
    assert resp.status_code == 200, resp.text
    assert resp.json["phone"] == "+14155550123"
    entry = AuditEntry.get((AuditEntry.action == "user.update_profile") & (AuditEntry.target_id == str(user.id)))
    assert entry.before == {"phone": None}
    assert entry.after == {"phone": "+14155550123"}
    assert str(entry.actor_id) == str(user.id)


def test_patch_me_validates_each_field(client, user, auth_headers):
    headers = auth_headers(user)
    for body, field in (
        ({"phone": "0155 555"}, "body.phone"),
        ({"full_name": ""}, "body.full_name"),
        ({"full_name": "x" * 201}, "body.full_name"),
        ({"full_name": 7}, "body.full_name"),
        ({"email": "new@example.com"}, "body.email"),
        ({"role": "admin"}, "body.role"),
    ):
        assert_problem(client.simulate_patch("/v1/me", headers=headers, json=body), 422, field=field)
    fresh = User.get_by_id(user.id)
    assert (fresh.full_name, fresh.phone, fresh.role, fresh.email) == (user.full_name, None, "buyer", user.email)
    assert AuditEntry.select().where(AuditEntry.action == "user.update_profile").count() == 0


def test_me_needs_a_token(client):
    assert_problem(client.simulate_get("/v1/me"), 401)
    resp = client.simulate_get("/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(resp, 401)
    assert resp.headers["www-authenticate"].startswith("Bearer")


def test_change_password_needs_the_current_one_and_ends_other_sessions(client, user, login):
    mine, other = login(user), login(user)
    wrong = client.simulate_post(
        "/v1/me/password",
        headers=bearer(mine),
        json={"current_password": "not my password", "new_password": "a brand new passphrase"},
    )
    assert_problem(wrong, 422, field="body.current_password")
    assert client.simulate_get("/v1/me", headers=bearer(other)).status_code == 200

    weak = client.simulate_post(
        "/v1/me/password", headers=bearer(mine), json={"current_password": PASSWORD, "new_password": "short"}
    )
    assert_problem(weak, 422, field="body.new_password")

    resp = client.simulate_post(
        "/v1/me/password",
        headers=bearer(mine),
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )
    assert resp.status_code == 204, resp.text
    assert client.simulate_get("/v1/me", headers=bearer(mine)).status_code == 200
    assert_problem(client.simulate_get("/v1/me", headers=bearer(other)), 401)
    assert_problem(client.simulate_post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}), 401)
    old = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert_problem(old, 401)
    new = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": "a brand new passphrase"})
    assert new.status_code == 200
    assert (
        AuditEntry.select()
        .where((AuditEntry.action == "user.password_change") & (AuditEntry.target_id == str(user.id)))
        .count()
        == 1
    )


def test_sessions_list_marks_the_current_one_and_deletes_another(client, user, login):
    mine, other = login(user), login(user)
    listed = client.simulate_get("/v1/me/sessions", headers=bearer(mine))
    assert listed.status_code == 200
    items = listed.json["items"]
    assert len(items) == 2
    assert [item["current"] for item in items].count(True) == 1
    other_id = next(item["id"] for item in items if not item["current"])

    resp = client.simulate_delete(f"/v1/me/sessions/{other_id}", headers=bearer(mine))
    assert resp.status_code == 204, resp.text
    assert_problem(client.simulate_get("/v1/me", headers=bearer(other)), 401)
    assert client.simulate_get("/v1/me", headers=bearer(mine)).status_code == 200
    remaining = client.simulate_get("/v1/me/sessions", headers=bearer(mine)).json["items"]
    assert [item["current"] for item in remaining] == [True]


def test_a_user_cannot_see_or_end_another_users_session(client, user, login):
    stranger = make_user()
    theirs, mine = login(stranger), login(user)
    their_session = AuthSession.get(AuthSession.user == stranger.id)
    listed = client.simulate_get("/v1/me/sessions", headers=bearer(mine)).json["items"]
    assert str(their_session.id) not in {item["id"] for item in listed}
    assert_problem(client.simulate_delete(f"/v1/me/sessions/{their_session.id}", headers=bearer(mine)), 404)
    assert client.simulate_get("/v1/me", headers=bearer(theirs)).status_code == 200
    assert AuthSession.get_by_id(their_session.id).revoked_at is None
    # Own profile only: the token decides whose profile /v1/me is.
    assert client.simulate_get("/v1/me", headers=bearer(mine)).json["id"] == str(user.id)


def test_deleting_an_unknown_session_is_404(client, user, auth_headers):
    resp = client.simulate_delete("/v1/me/sessions/00000000-0000-4000-8000-000000000000", headers=auth_headers(user))
    assert_problem(resp, 404)
