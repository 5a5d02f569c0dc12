"""``/v1/openapi.json``: a valid OpenAPI 3.1 document that covers every route the app serves."""
from __future__ import annotations

import re

import pytest
from falcon import inspect as falcon_inspect
from openapi_spec_validator import validate

from api import openapi
from api.operation import operation

# A redirect to the resource (a signed download URL) is a success too.
SUCCESS = re.compile(r"^[23]\d\d$")


@pytest.fixture
def spec(client):
    resp = client.simulate_get("/v1/openapi.json")
    assert resp.status_code == 200, resp.text
    return resp.json


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield path, method, op


def _documented(client):
    """``(path, method, @operation metadata)`` of each routed responder, as the generator walks them."""
    return [(openapi.path_of(t), m.lower(), r.operation) for t, m, _, r in openapi.routes(client.app)]


def test_document_is_valid_openapi_3_1(spec):
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"] == "Hearth API"
    assert spec["servers"] == [{"url": "/"}]


def test_document_is_public_and_cacheable(client):
    resp = client.simulate_get("/v1/openapi.json")
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    assert client.simulate_get("/v1/openapi.json").content == resp.content


def test_every_route_is_documented(client, spec):
    """Listed by Falcon's own inspector, so a responder without ``@operation`` fails here."""
    served = {(re.sub(r"\{(\w+)[^}]*\}", r"{\1}", route.path), m.method.lower())
              for route in falcon_inspect.inspect_routes(client.app) for m in route.methods if not m.internal}
    assert {("/v1/auth/login", "post"), ("/v1/admin/users/{user_id}", "patch"), ("/docs", "get")} <= served
    documented = {(path, method) for path, method, _ in _operations(spec)}
    assert served - documented == set(), "routes without @operation"
    for path, method, op in _operations(spec):
        assert op["summary"], (path, method)
        assert any(SUCCESS.match(status) for status in op["responses"]), (path, method)


def test_operation_ids_are_unique(spec):
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))
    assert "AdminUsers_patch_item" in ids


def test_bodies_and_responses_reference_their_schemas(client, spec):
    schemas = spec["components"]["schemas"]
    for path, method, meta in _documented(client):
        op = spec["paths"][path][method]
        if meta.body is not None:
            assert op["requestBody"]["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{meta.body.__name__}"}, (path, method)
            assert op["requestBody"]["required"] is bool(schemas[meta.body.__name__]["required"])
        else:
            assert "requestBody" not in op
        success = op["responses"][str(meta.status)]
        if meta.response is not None:
            assert success["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{meta.response.__name__}"}, (path, method)
        if meta.status == 204:
            assert "content" not in success


def test_security_follows_each_operations_auth(client, spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert spec["security"] == [{"bearerAuth": []}]
    seen = set()
    for path, method, meta in _documented(client):
        op = spec["paths"][path][method]
        seen.add(meta.auth)
        if meta.auth == "none":
            assert op["security"] == [], (path, method)
            assert "401" not in op["responses"] or 401 in meta.errors
        elif meta.auth == "optional":
            assert op["security"] == [{}, {"bearerAuth": []}]
        else:
            assert op.get("security", spec["security"]) == [{"bearerAuth": []}], (path, method)
            assert "401" in op["responses"]
        if meta.permission:
            assert op["x-permission"] == meta.permission and "403" in op["responses"]
    assert {"none", "required"} <= seen


def test_errors_are_problem_json_with_their_headers(spec):
    problem = {"$ref": "#/components/schemas/Problem"}
    assert "Problem" in spec["components"]["schemas"]
    login = spec["paths"]["/v1/auth/login"]["post"]["responses"]
    for status in ("401", "403", "422", "429", "500"):
        assert login[status]["content"]["application/problem+json"]["schema"] == problem
    assert "Retry-After" in login["429"]["headers"]
    assert "RateLimit-Remaining" in login["200"]["headers"]
    assert "X-Request-ID" in login["500"]["headers"]
    health = spec["paths"]["/healthz"]["get"]["responses"]
    assert "429" not in health and "RateLimit-Limit" not in health["200"]["headers"]


def test_parameters_come_from_the_template_and_the_query_schema(spec):
    session = spec["paths"]["/v1/me/sessions/{session_id}"]["delete"]
    assert session["parameters"] == [{"name": "session_id", "in": "path", "required": True,
                                      "schema": {"type": "string", "format": "uuid"}}]
    assert session["responses"]["204"].get("content") is None
    users = {p["name"]: p for p in spec["paths"]["/v1/admin/users"]["get"]["parameters"]}
    assert set(users) == {"role", "q", "banned", "cursor", "limit"}
    assert users["limit"]["required"] is False
    assert (users["limit"]["schema"]["minimum"], users["limit"]["schema"]["maximum"]) == (1, 100)
    assert users["q"]["schema"] == {"type": "string", "maxLength": 254, "description": "Substring of email or name"}
    assert users["role"]["schema"]["enum"] == ["admin", "agent", "buyer", "seller"]


def test_a_body_of_optional_fields_may_be_left_out(spec):
    assert spec["paths"]["/v1/auth/login"]["post"]["requestBody"]["required"] is True
    assert spec["paths"]["/v1/auth/logout"]["post"]["requestBody"]["required"] is False


def test_accepted_work_points_at_its_job(spec):
    accepted = spec["paths"]["/v1/auth/verify-email/resend"]["post"]["responses"]["202"]
    assert accepted["headers"]["Location"] == {"$ref": "#/components/headers/JobLocation"}
    assert "/v1/jobs/{id}" in spec["components"]["headers"]["JobLocation"]["description"]
    assert "/v1/jobs/{id}" in spec["info"]["description"]


class _Late:
    @operation("Added after the app was built", auth="none", rate=None, tags=("test",))
    def on_get(self, req, resp):
        resp.media = {}


def test_routes_added_later_are_documented_without_touching_the_generator(client):
    client.app.add_route("/v1/late/{thing_id:int}", _Late())
    spec = client.simulate_get("/v1/openapi.json").json
    op = spec["paths"]["/v1/late/{thing_id}"]["get"]
    assert op["summary"] == "Added after the app was built"
    assert op["parameters"][0]["schema"] == {"type": "integer"}
    validate(spec)
