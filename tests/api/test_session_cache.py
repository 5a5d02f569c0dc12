"""The Redis session cache never lets an old state win over a change that committed after it was read.

A cache rebuild is two steps, ``read`` (PostgreSQL) then ``store`` (Redis). These
tests put a logout, a ban or a role change between the two, as a concurrent
request would, and check the change still holds.
"""

from __future__ import annotations

from models.accounts import AuthSession
from models.session_cache import REVOKED
from tests.api.conftest import assert_problem, bearer
from tests.factories import make_user


def _session_id(user) -> str:
    return str(AuthSession.get((AuthSession.user == user.id) & AuthSession.revoked_at.is_null()).id)


def test_a_rebuild_that_read_before_a_logout_cannot_revive_the_session(client, services, user, login):
    pair = login(user)
    sid = _session_id(user)
    stale = services.sessions.read(sid)
    assert stale == b"buyer"
    assert client.simulate_post("/v1/auth/logout", headers=bearer(pair)).status_code == 204
    assert services.sessions.store(sid, stale) == REVOKED
    assert_problem(client.simulate_get("/v1/me", headers=bearer(pair)), 401)


def test_a_rebuild_that_read_before_a_ban_cannot_revive_the_session(client, services, admin, auth_headers, user, login):
    pair = login(user)
    sid = _session_id(user)
    stale = services.sessions.read(sid)
    resp = client.simulate_patch(f"/v1/admin/users/{user.id}", headers=auth_headers(admin), json={"banned": True})
    assert resp.status_code == 200
    services.sessions.store(sid, stale)
    assert_problem(client.simulate_get("/v1/me", headers=bearer(pair)), 401)


def test_a_rebuild_that_read_the_old_role_cannot_undo_a_demotion(client, services, admin, auth_headers, login):
    other_admin = make_user(role="admin")
    pair = login(other_admin)
    sid = _session_id(other_admin)
    stale = services.sessions.read(sid)
    assert stale == b"admin"
    resp = client.simulate_patch(
        f"/v1/admin/users/{other_admin.id}", headers=auth_headers(admin), json={"role": "buyer"}
    )
    assert resp.status_code == 200
    assert services.sessions.store(sid, stale) == b"buyer"
    assert_problem(client.simulate_get("/v1/admin/users", headers=bearer(pair)), 403)


def test_a_role_change_never_revives_a_revoked_session(client, services, user, login):
    pair = login(user)
    sid = _session_id(user)
    assert client.simulate_post("/v1/auth/logout", headers=bearer(pair)).status_code == 204
    # A role change that listed the session as live just before the logout committed.
    services.sessions.set_role([sid], "admin")
    assert services.sessions.load(sid) == REVOKED
    assert_problem(client.simulate_get("/v1/me", headers=bearer(pair)), 401)


def test_a_cold_cache_is_rebuilt_from_the_database(client, services, redis, user, login):
    pair = login(user)
    sid = _session_id(user)
    assert redis.get(services.sessions.key(sid)) is None
    assert client.simulate_get("/v1/me", headers=bearer(pair)).status_code == 200
    assert redis.get(services.sessions.key(sid)) == b"buyer"
    assert 0 < redis.ttl(services.sessions.key(sid)) <= services.settings.access_token_ttl
    # Losing the whole cache changes nothing a user can see.
    redis.delete(services.sessions.key(sid))
    assert client.simulate_get("/v1/me", headers=bearer(pair)).status_code == 200


def test_a_profile_fill_that_read_before_a_change_cannot_bring_the_old_profile_back(
    client, services, user, auth_headers
):
    import msgspec

    headers = auth_headers(user)
    stale = msgspec.json.encode(user.profile())  # what a slower GET read before the PATCH committed
    resp = client.simulate_patch("/v1/me", headers=headers, json={"full_name": "Renamed Person"})
    assert resp.status_code == 200
    services.sessions.fill_profile(user.id, stale)
    assert client.simulate_get("/v1/me", headers=headers).json["full_name"] == "Renamed Person"
