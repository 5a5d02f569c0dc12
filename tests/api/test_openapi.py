"""``/v1/openapi.json``: a valid OpenAPI 3.1 document that covers every route the app serves."""

from __future__ import annotations

import re

import pytest
from falcon import inspect as falcon_inspect
from openapi_spec_validator import validate

from api import openapi
from api.operation import operation
from api.schemas import SINGLE_LINE
from models.accounts import User
from models.base import utcnow

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
    served = {
        (re.sub(r"\{(\w+)[^}]*\}", r"{\1}", route.path), m.method.lower())
        for route in falcon_inspect.inspect_routes(client.app)
        for m in route.methods
        if not m.internal
    }
    assert {("/v1/auth/login", "post"), ("/v1/admin/users/{user_id}", "patch"), ("/docs", "get")} <= served
    documented = {(path, method) for path, method, _ in _operations(spec)}
    compat = {(path, method) for path, method in served if path.startswith(openapi.COMPAT_PREFIX)}
    assert compat, "the Supabase-compatible API is documented in docs/supabase-compat.md instead"
    assert served - compat - documented == set(), "routes without @operation"
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
                "$ref": f"#/components/schemas/{meta.body.__name__}"
            }, (path, method)
            assert op["requestBody"]["required"] is bool(schemas[meta.body.__name__]["required"])
        elif meta.raw_body is not None:
            types = (meta.raw_body,) if isinstance(meta.raw_body, str) else meta.raw_body
            assert op["requestBody"] == {
                "required": True,
                "content": {media_type: {"schema": {"type": "string", "format": "binary"}} for media_type in types},
            }, (path, method)
        else:
            assert "requestBody" not in op
        success = op["responses"][str(meta.status)]
        if meta.response is not None:
            expected = {"$ref": f"#/components/schemas/{meta.response.__name__}"}
            if meta.alternative is not None:  # e.g. a login that answers a two-factor challenge instead
                expected = {"oneOf": [expected, {"$ref": f"#/components/schemas/{meta.alternative.__name__}"}]}
            assert success["content"]["application/json"]["schema"] == expected, (path, method)
        if meta.status == 204:
            assert "content" not in success
    # The local upload URL takes the file as it is, with the type the intent declared.
    upload_put = spec["paths"]["/v1/uploads/{upload_id}/content"]["put"]["requestBody"]["content"]
    assert sorted(upload_put) == ["application/pdf", "image/heic", "image/jpeg", "image/png", "image/webp"]


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
    assert session["parameters"] == [
        {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
    ]
    assert session["responses"]["204"].get("content") is None
    users = {p["name"]: p for p in spec["paths"]["/v1/admin/users"]["get"]["parameters"]}
    assert set(users) == {"role", "q", "banned", "cursor", "limit"}
    assert users["limit"]["required"] is False
    assert (users["limit"]["schema"]["minimum"], users["limit"]["schema"]["maximum"]) == (1, 100)
    assert users["q"]["schema"] == {
        "type": "string",
        "maxLength": 254,
        "pattern": SINGLE_LINE,
        "description": "Substring of email or name",
    }
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


def _strings(schema: dict, schemas: dict, path: str, seen: frozenset = frozenset()):
    """``(path, schema)`` of every string a request schema holds, through refs, unions, arrays and objects."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name not in seen:
            yield from _strings(schemas[name], schemas, path, seen | {name})
        return
    for option in schema.get("anyOf", ()):
        yield from _strings(option, schemas, path, seen)
    if "items" in schema:
        yield from _strings(schema["items"], schemas, f"{path}[]", seen)
    for name, member in schema.get("properties", {}).items():
        yield from _strings(member, schemas, f"{path}.{name}", seen)
    if schema.get("type") == "string" and "enum" not in schema and "format" not in schema:
        yield path, schema


# Multi-line text: its line breaks and tabs are content.
MULTI_LINE_FIELDS = {
    "ConversationStart.body",
    "MessagePost.body",
    "PropertyCreate.public_remarks",
    "PropertyPatch.public_remarks",
    "ReportRequest.details",
    "ReportResolution.resolution",
    "AdminUserPatch.ban_reason",
    "OfferCreate.message",
    "OfferCounter.message",
    "OfferDecision.reason",
    "ImportCreate.mapping",
}


def test_every_request_string_refuses_control_characters(spec):
    schemas = spec["components"]["schemas"]
    found = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            # A raw JSON body (a provider's signed webhook) is read as bytes, not decoded into a schema.
            if body and "$ref" in body["schema"]:
                found.update(_strings(body["schema"], schemas, body["schema"]["$ref"].rsplit("/", 1)[1]))
            for parameter in op.get("parameters", ()):
                if parameter["in"] == "query":
                    found.update(_strings(parameter["schema"], schemas, f"{where}?{parameter['name']}"))
    assert len(found) > 50
    multi = set()
    for field, schema in found.items():
        pattern = re.compile(schema.get("pattern", ""))
        assert not pattern.search("a\x00b") and not pattern.search("a\x1bb"), field
        if pattern.search("a\nb\tc\r"):
            multi.add(field)
            assert not pattern.search("a\x0bb") and not pattern.search("a\x0cb"), field
        else:
            for control in ("\n", "\r", "\t", "\x7f", "\x85", "\u2028", "\u2029"):
                assert not pattern.search(f"a{control}b"), (field, control)
    assert multi == MULTI_LINE_FIELDS


def test_new_passwords_need_what_the_server_needs(spec):
    from models.passwords import MIN_LENGTH

    schemas = spec["components"]["schemas"]
    for schema, field in (
        ("RegisterRequest", "password"),
        ("ResetPasswordRequest", "password"),
        ("ChangePasswordRequest", "new_password"),
    ):
        assert schemas[schema]["properties"][field]["minLength"] == MIN_LENGTH, schema
    # Signing in takes any stored password, also one from before the policy.
    assert schemas["LoginRequest"]["properties"]["password"]["minLength"] == 1


def test_every_status_the_server_answers_is_documented(spec):
    paths = spec["paths"]
    cancel = paths["/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    assert {"200", "202"} <= set(cancel)
    assert cancel["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobView"}
    assert cancel["202"]["headers"]["Location"] == {"$ref": "#/components/headers/JobLocation"}
    assert "201" in paths["/v1/conversations"]["post"]["responses"]
    assert "200" in paths["/v1/conversations"]["post"]["responses"]
    assert "200" in paths["/v1/reports"]["post"]["responses"]
    not_modified = paths["/v1/properties/{property_id}"]["get"]["responses"]["304"]
    assert "content" not in not_modified
    # A path parameter that does not convert (not a UUID) is a 404 from the router, whatever the operation.
    assert "404" in paths["/v1/me/blocks/{user_id}"]["delete"]["responses"]
    for path, item in paths.items():
        for method, op in item.items():
            kinds = {parameter["in"] for parameter in op.get("parameters", ())}
            if "path" in kinds:
                assert "404" in op["responses"], (method, path)
            if kinds:
                too_long = op["responses"]["414"]
                assert too_long["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path)
                assert "8,190 bytes" in too_long["description"]


def test_a_raw_upload_documents_its_body(spec):
    upload = spec["paths"]["/v1/uploads"]["post"]
    assert upload["requestBody"] == {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }


def test_rules_across_fields_are_written_where_clients_read(spec):
    schemas = spec["components"]["schemas"]
    assert "`end` differs from `start`" in schemas["QuietHours"]["description"]
    for schema in ("PropertyCreate", "PropertyPatch"):
        assert "association_fee_frequency" in schemas[schema]["properties"]["association_fee"]["description"]


def test_a_password_of_spaces_signs_in_as_it_registered(client):
    password = " " * 12
    resp = client.simulate_post(
        "/v1/auth/register", json={"email": "spaces@example.com", "password": password, "full_name": "Spacey"}
    )
    assert resp.status_code == 202, resp.text
    User.update(email_verified_at=utcnow()).where(User.email == "spaces@example.com").execute()
    login = client.simulate_post("/v1/auth/login", json={"email": "spaces@example.com", "password": password})
    assert login.status_code == 200, login.text


def test_a_session_owing_its_second_factor_is_documented_where_it_is_refused(spec):
    paths = spec["paths"]
    me = paths["/v1/me"]["get"]["responses"]["403"]["description"]
    assert "mfa-required" in me
    assert "mfa-required" in paths["/v1/admin/users"]["get"]["responses"]["403"]["description"]
    # Open to such a session: ending it, and the step-up that completes it.
    assert "403" not in paths["/v1/auth/logout"]["post"]["responses"]
    assert "mfa-required" not in paths["/v1/auth/mfa/challenge"]["post"]["responses"].get("403", {}).get(
        "description", ""
    )
