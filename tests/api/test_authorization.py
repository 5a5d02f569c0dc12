"""Who may call what: anonymous callers, buyers on admin routes, users on each other's data."""

from __future__ import annotations

import re
import uuid

import falcon.inspect
import pytest

from tests.api.conftest import assert_problem
from tests.factories import make_user

_PARAM = re.compile(r"\{[^}]+\}")


def _endpoints(app):
    """Every (method, concrete path, operation) the app serves, path parameters filled with a UUID."""
    found = []
    for route in falcon.inspect.inspect_routes(app):
        path = _PARAM.sub(str(uuid.uuid4()), route.path)
        _resource, method_map, _params, _template = app._router.find(path)
        for method in route.methods:
            if method.internal:
                continue
            op = getattr(method_map[method.method], "operation", None)
            found.append((method.method, path, op))
    return found


def _call(client, method, path, headers=None):
    return client.simulate_request(method, path, headers=headers or {}, json={})


def test_every_route_declares_its_operation(client):
    missing = [(m, p) for m, p, op in _endpoints(client.app) if op is None and p.startswith("/v1/")]
    assert missing == []


def test_anonymous_callers_get_401_on_every_route_that_needs_a_login(client):
    checked = 0
    for method, path, op in _endpoints(client.app):
        # /auth/v1 answers in GoTrue's format (tests/api/test_supabase_auth.py).
        if op is None or op.auth != "required" or path.startswith("/auth/v1/"):
            continue
        resp = _call(client, method, path)
        assert_problem(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Bearer"), (method, path)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("role", ["buyer", "seller", "agent"])
def test_non_admins_get_403_on_every_admin_route(client, auth_headers, role):
    headers = auth_headers(make_user(role=role))
    admin_routes = [(m, p) for m, p, _ in _endpoints(client.app) if p.startswith("/v1/admin/")]
    assert len(admin_routes) >= 4
    for method, path in admin_routes:
        assert_problem(_call(client, method, path, headers), 403)


def test_a_user_cannot_read_another_users_data(client, auth_headers, login):
    me, other = make_user(), make_user(full_name="Private Person")
    login(other)
    headers = auth_headers(me)
    profile = client.simulate_get("/v1/me", headers=headers).json
    assert profile["id"] == str(me.id)
    sessions = client.simulate_get("/v1/me/sessions", headers=headers).json["items"]
    assert len(sessions) == 1 and sessions[0]["current"]
    # Another user's record through the admin API is forbidden, not merely empty.
    assert_problem(client.simulate_get(f"/v1/admin/users/{other.id}", headers=headers), 403)
    # A query string cannot widen /v1/me to somebody else.
    assert client.simulate_get("/v1/me", headers=headers, params={"user_id": str(other.id)}).json["id"] == str(me.id)
