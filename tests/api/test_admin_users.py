"""Admin user management: role changes and bans that apply at once, audited, with safe paging."""

from __future__ import annotations

import datetime

import pytest

from models.accounts import User
from models.base import utcnow
from tests.api.conftest import assert_problem, bearer
from tests.factories import PASSWORD, enroll_totp, make_user


@pytest.fixture
def admin_headers(admin, auth_headers):
    return auth_headers(admin)


def _patch(client, headers, user, **body):
    return client.simulate_patch(f"/v1/admin/users/{user.id}", headers=headers, json=body)


def _audit(client, headers, user):
    resp = client.simulate_get(
        "/v1/admin/audit", headers=headers, params={"target_type": "user", "target_id": str(user.id)}
    )
    assert resp.status_code == 200, resp.text
    return [item for item in resp.json["items"] if item["action"] == "admin.update_user"]


def test_a_role_change_applies_to_the_users_next_request(client, admin, admin_headers, user, login, settings):
    # Admin powers need a session that proved a second factor (tests/api/test_mfa_admin.py): this
    # buyer has an authenticator app, so their login is already aal2.
    enroll_totp(user, settings.secret_key)
    mine = bearer(login(user))
    assert client.simulate_get("/v1/me", headers=mine).json["role"] == "buyer"  # cached now
    assert_problem(client.simulate_get("/v1/admin/users", headers=mine), 403)

    resp = _patch(client, admin_headers, user, role="admin")
    assert resp.status_code == 200, resp.text
    assert resp.json["role"] == "admin"
    assert client.simulate_get("/v1/me", headers=mine).json["role"] == "admin"
    assert client.simulate_get("/v1/admin/users", headers=mine).status_code == 200

    assert _patch(client, admin_headers, user, role="seller").status_code == 200
    assert client.simulate_get("/v1/me", headers=mine).json["role"] == "seller"
    assert_problem(client.simulate_get("/v1/admin/users", headers=mine), 403)

    [demote, promote] = _audit(client, admin_headers, user)  # newest first
    assert (promote["before"]["role"], promote["after"]["role"]) == ("buyer", "admin")
    assert (demote["before"]["role"], demote["after"]["role"]) == ("admin", "seller")
    assert promote["actor_id"] == demote["actor_id"] == str(admin.id)
    assert promote["request_id"]


def test_a_ban_ends_every_session_and_refuses_login_until_unbanned(client, admin_headers, user, login):
    first, second = login(user), login(user)
    assert client.simulate_get("/v1/me", headers=bearer(first)).status_code == 200

    resp = _patch(client, admin_headers, user, banned=True, ban_reason="chargebacks")
    assert resp.status_code == 200, resp.text
    assert (resp.json["banned"], resp.json["ban_reason"]) == (True, "chargebacks")
    for pair in (first, second):
        assert_problem(client.simulate_get("/v1/me", headers=bearer(pair)), 401)
        assert_problem(client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}), 401)
    refused = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert assert_problem(refused, 403)["type"].endswith("/account-suspended")
    # A wrong password still gets the ordinary answer: a ban is not disclosed without the password.
    assert_problem(client.simulate_post("/v1/auth/login", json={"email": user.email, "password": "nope nope"}), 401)

    resp = _patch(client, admin_headers, user, banned=False)
    assert resp.status_code == 200
    assert (resp.json["banned"], resp.json["ban_reason"]) == (False, None)
    assert client.simulate_post("/v1/auth/login", json={"email": user.email, "password": PASSWORD}).status_code == 200
    # Unbanning does not bring the old sessions back.
    assert_problem(client.simulate_get("/v1/me", headers=bearer(first)), 401)

    unban, ban = _audit(client, admin_headers, user)
    assert ban["before"] == {"role": "buyer", "banned": False, "ban_reason": None}
    assert ban["after"] == {"role": "buyer", "banned": True, "ban_reason": "chargebacks"}
    assert unban["before"]["banned"] is True and unban["after"]["banned"] is False


def test_admins_cannot_ban_or_demote_themselves(client, admin, admin_headers):
    for body in ({"banned": True}, {"role": "buyer"}, {"role": "agent", "banned": False}):
        body_ = assert_problem(_patch(client, admin_headers, admin, **body), 409)
        assert body_["type"].endswith("/self-admin-change")
    fresh = User.get_by_id(admin.id)
    assert (fresh.role, fresh.banned_at) == ("admin", None)
    assert client.simulate_get("/v1/admin/users", headers=admin_headers).status_code == 200
    assert _audit(client, admin_headers, admin) == []


def test_a_patch_that_changes_nothing_writes_no_audit_row(client, admin_headers, user):
    assert _patch(client, admin_headers, user, role="buyer", banned=False).status_code == 200
    assert _audit(client, admin_headers, user) == []


def test_unknown_users_are_404(client, admin_headers):
    missing = "6f1c3f5e-0000-4000-8000-000000000000"
    assert_problem(client.simulate_get(f"/v1/admin/users/{missing}", headers=admin_headers), 404)
    assert_problem(
        client.simulate_patch(f"/v1/admin/users/{missing}", headers=admin_headers, json={"banned": True}), 404
    )


def test_get_one_user(client, admin_headers, user):
    resp = client.simulate_get(f"/v1/admin/users/{user.id}", headers=admin_headers)
    assert resp.status_code == 200
    assert (resp.json["email"], resp.json["banned"], resp.json["last_login_at"]) == (user.email, False, None)


def _list(client, headers, **params):
    resp = client.simulate_get("/v1/admin/users", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json


def test_list_filters_by_role_banned_and_text(client, admin, admin_headers):
    agents = {str(make_user(role="agent", full_name=f"Agent {n}").id) for n in range(3)}
    banned = {str(make_user(banned=True).id) for _ in range(2)}
    zebra = str(make_user(role="seller", full_name="Zebra Crossing").id)
    percent = str(make_user(email="odd%name@example.com").id)

    def ids(**params):
        return {item["id"] for item in _list(client, admin_headers, **params)["items"]}

    assert ids(role="agent") == agents
    assert ids(role="admin") == {str(admin.id)}
    assert ids(banned="true") == banned
    assert banned.isdisjoint(ids(banned="false"))
    assert ids(q="ZEBRA") == {zebra}
    assert ids(q="example.com", role="seller") == {zebra}
    assert ids(q="%") == {percent}  # wildcards in q are literal
    assert ids(q="_") == set()
    assert ids(role="agent", banned="true") == set()


def test_cursor_pagination_visits_every_user_once(client, admin, admin_headers):
    users = [make_user() for _ in range(7)]
    # Several users created in the same microsecond: the id breaks the tie.
    same = utcnow() - datetime.timedelta(days=1)
    User.update(created_at=same).where(User.id.in_([u.id for u in users[:4]])).execute()
    expected = [str(u.id) for u in User.select().order_by(User.created_at.desc(), User.id.desc())]
    assert len(expected) == 8

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = _list(client, admin_headers, **params)
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected  # no repeats, no skips, stable order
    assert pages == 3


def test_a_forged_cursor_is_422_naming_the_parameter(client, admin_headers):
    make_user(), make_user()
    cursor = _list(client, admin_headers, limit=1)["next_cursor"]
    audit_cursor = client.simulate_get("/v1/admin/audit", headers=admin_headers, params={"limit": 1})
    forged = [
        "not-a-cursor",
        cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
        "W10",  # base64 of "[]" without a signature
        "é",
    ]
    if audit_cursor.json["next_cursor"]:
        forged.append(audit_cursor.json["next_cursor"])  # a cursor of another listing
    for value in forged:
        resp = client.simulate_get("/v1/admin/users", headers=admin_headers, params={"cursor": value})
        assert_problem(resp, 422, field="query.cursor")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "query.limit"),
        ({"limit": "101"}, "query.limit"),
        ({"limit": "ten"}, "query.limit"),
        ({"role": "king"}, "query.role"),
        ({"banned": "maybe"}, "query.banned"),
        ({"q": "x" * 255}, "query.q"),
        ({"sort": "email"}, "query.sort"),
    ],
)
def test_bad_list_queries_are_422_naming_the_parameter(client, admin_headers, params, field):
    assert_problem(client.simulate_get("/v1/admin/users", headers=admin_headers, params=params), 422, field=field)


def test_audit_log_filters_and_pages(client, admin, admin_headers):
    targets = [make_user() for _ in range(3)]
    for target in targets:
        _patch(client, admin_headers, target, role="agent")
    resp = client.simulate_get("/v1/admin/audit", headers=admin_headers, params={"actor_id": str(admin.id), "limit": 2})
    first = resp.json
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = client.simulate_get(
        "/v1/admin/audit",
        headers=admin_headers,
        params={"actor_id": str(admin.id), "limit": 2, "cursor": first["next_cursor"]},
    ).json
    actions = [item for item in first["items"] + second["items"] if item["action"] == "admin.update_user"]
    assert sorted(item["target_id"] for item in actions) == sorted(str(t.id) for t in targets)
    assert_problem(
        client.simulate_get("/v1/admin/audit", headers=admin_headers, params={"actor_id": "bob"}),
        422,
        field="query.actor_id",
    )
    assert_problem(
        client.simulate_get("/v1/admin/audit", headers=admin_headers, params={"cursor": "zz"}),
        422,
        field="query.cursor",
    )
