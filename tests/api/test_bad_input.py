"""Bad input on every route that takes a body: a problem+json 4xx naming the field, and nothing written."""

from __future__ import annotations

import json
import re

import pytest

from models.accounts import AccountToken, AuthSession, RefreshToken, User
from models.audit import AuditEntry
from models.base import utcnow
from models.conversations import Conversation, Message, UserReport
from models.jobs import Job
from models.notifications import Notification
from models.offers import Offer
from models.saved_searches import SavedSearch
from tests.api.conftest import assert_problem
from tests.conftest import make_settings
from tests.factories import PASSWORD, make_user

MAX_BODY = 4096
LONG = "x" * 1000  # over every string limit, under the body limit


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    # Each route is sent many bad bodies here; the auth bucket is for people, not for this.
    return make_settings(
        database, tmp_path, redis_prefix=redis_prefix, max_body_bytes=MAX_BODY, rate_limit_auth="1000/minute"
    )


# (method, path, who calls it, a valid body)
ROUTES = {
    "register": (
        "POST",
        "/v1/auth/register",
        None,
        {"email": "new@example.com", "password": "long enough phrase", "full_name": "New", "role": "agent"},
    ),
    "verify-email": ("POST", "/v1/auth/verify-email", None, {"token": "t" * 43}),
    "login": ("POST", "/v1/auth/login", None, {"email": "someone@example.com", "password": "a password"}),
    "refresh": ("POST", "/v1/auth/refresh", None, {"refresh_token": "r" * 43}),
    "logout": ("POST", "/v1/auth/logout", "buyer", {"refresh_token": "r" * 43}),
    "forgot": ("POST", "/v1/auth/password/forgot", None, {"email": "someone@example.com"}),
    "reset": ("POST", "/v1/auth/password/reset", None, {"token": "t" * 43, "password": "long enough phrase"}),
    "patch-me": ("PATCH", "/v1/me", "buyer", {"full_name": "Renamed", "phone": "+14155550123"}),
    "change-password": (
        "POST",
        "/v1/me/password",
        "buyer",
        {"current_password": PASSWORD, "new_password": "another long phrase"},
    ),
    "admin-patch-user": (
        "PATCH",
        "/v1/admin/users/{target}",
        "admin",
        {"role": "agent", "banned": True, "ban_reason": "spam"},
    ),
    # POST /v1/uploads takes the file itself as its body, not JSON: tests/api/test_uploads.py.
    "upload-intent": (
        "POST",
        "/v1/uploads/intents",
        "buyer",
        {"purpose": "document", "filename": "deed.pdf", "content_type": "application/pdf", "size": 1000},
    ),
    "start-conversation": (
        "POST",
        "/v1/conversations",
        "buyer",
        {"property_id": "8d3c1b1e-2f59-4b5a-9a51-2f1c8e0f4d2a", "body": "Is it still available?"},
    ),
    "post-message": ("POST", "/v1/conversations/{target}/messages", "buyer", {"body": "See you at ten"}),
    "mark-read": ("POST", "/v1/conversations/{target}/read", "buyer", {"message_id": 1}),
    "report": ("POST", "/v1/reports", "buyer", {"user_id": "8d3c1b1e-2f59-4b5a-9a51-2f1c8e0f4d2a", "reason": "spam"}),
    "admin-patch-report": ("PATCH", "/v1/admin/reports/{target}", "admin", {"status": "dismissed"}),
    "create-saved-search": (
        "POST",
        "/v1/me/saved-searches",
        "buyer",
        {"name": "Austin homes", "query": {"city": "Austin", "min_beds": 3}},
    ),
    "patch-saved-search": (
        "PATCH",
        "/v1/me/saved-searches/{target}",
        "buyer",
        {"name": "Renamed", "query": {"city": "Dallas"}, "alerts": False},
    ),
    "notification-preferences": (
        "PATCH",
        "/v1/me/notification-preferences",
        "buyer",
        {
            "types": {"message.received": {"email": False}},
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "timezone": "Europe/Paris",
            "digest_hour": 7,
        },
    ),
    "make-offer": (
        "POST",
        "/v1/properties/{target}/offers",
        "buyer",
        {
            "price": 410_000_00,
            "earnest_money": 12_000_00,
            "financing": "conventional",
            "closing_date": "2027-04-15",
            "expires_at": "2027-03-01T17:00:00Z",
        },
    ),
    "counter-offer": ("POST", "/v1/offers/{target}/counter", "seller", {"price": 420_000_00, "message": "Halfway?"}),
    "reject-offer": ("POST", "/v1/offers/{target}/reject", "seller", {"reason": "Too low"}),
    "withdraw-offer": ("POST", "/v1/offers/{target}/withdraw", "buyer", {"reason": "We found another house"}),
    "phone": ("PUT", "/v1/me/phone", "buyer", {"phone": "+14155550123"}),
    "phone-verify": ("POST", "/v1/me/phone/verify", "buyer", {"code": "123456"}),
    "escrow-cancel": ("POST", "/v1/escrows/{target}/cancel", "buyer", {"reason": "changed my mind"}),
    "escrow-instruct": ("POST", "/v1/escrows/{target}/instructions", "buyer", {"action": "release"}),
    "escrow-dispute": ("POST", "/v1/escrows/{target}/disputes", "buyer", {"reason": "the roof leaks"}),
    "escrow-resolution": (
        "POST",
        "/v1/admin/escrows/{target}/resolution",
        "admin",
        {"buyer_amount": 1, "seller_amount": 1, "reason": "half each"},
    ),
    "sandbox-event": (
        "POST",
        "/v1/admin/payments/sandbox/events",
        "admin",
        {"payment_intent": "pi_sandbox_3f2a9c0d1b7e4a5f6c8d9e0a", "outcome": "succeeded"},
    ),
}
# Strings whose limit is above LONG: a value just over their own limit.
OVERSIZE = {
    ("start-conversation", "body"): "x" * 4001,
    ("post-message", "body"): "x" * 4001,
    ("escrow-cancel", "reason"): "x" * 1001,
    ("escrow-dispute", "reason"): "x" * 1001,
    ("escrow-resolution", "reason"): "x" * 1001,
    ("counter-offer", "message"): "x" * 4001,
    ("reject-offer", "reason"): "x" * 2001,
    ("withdraw-offer", "reason"): "x" * 2001,
}
# Routes whose every body field is optional are left out of the "missing field" tests.
REQUIRED = set(ROUTES) - {
    "logout",
    "patch-me",
    "admin-patch-user",
    "mark-read",
    "patch-saved-search",
    "notification-preferences",
    "escrow-cancel",
    "counter-offer",
    "reject-offer",
    "withdraw-offer",
}


def _counts() -> dict:
    return {
        model.__name__: model.select().count()
        for model in (
            User,
            AuthSession,
            RefreshToken,
            AccountToken,
            AuditEntry,
            Job,
            Conversation,
            Message,
            UserReport,
            Notification,
            SavedSearch,
            Offer,
        )
    }


class Caller:
    def __init__(self, client, route: str, login):
        self.client = client
        self.route = route
        self.method, path, who, self.valid = ROUTES[route]
        self.headers = {}
        target = make_user()
        self.path = path.format(target=target.id)
        if who:
            self.headers["Authorization"] = f"Bearer {login(make_user(role=who))['access_token']}"

    def send(self, body: bytes, content_type: str | None = "application/json"):
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        return self.client.simulate_request(self.method, self.path, body=body, headers=headers)

    def send_json(self, value):
        return self.send(json.dumps(value).encode())


@pytest.fixture(params=sorted(ROUTES))
def caller(request, client, login):
    return Caller(client, request.param, login)


@pytest.fixture(params=sorted(REQUIRED))
def strict_caller(request, client, login):
    """A caller of a route whose body has required fields."""
    return Caller(client, request.param, login)


@pytest.fixture
def unchanged():
    """Assert, after the test's requests, that no table gained or lost a row."""
    state = {}

    def snapshot():
        state["before"] = _counts()

    yield snapshot
    assert _counts() == state["before"]


def test_malformed_json_is_400(caller, unchanged):
    unchanged()
    for raw in (b'{"email": ', b"{'single': 'quotes'}", b"\xff\xfe", b'{"a": 1} trailing'):
        body = assert_problem(caller.send(raw), 400)
        assert body["type"].endswith("/malformed-json")


def test_not_json_is_415(caller, unchanged):
    unchanged()
    valid = json.dumps(caller.valid).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        assert_problem(caller.send(valid, content_type), 415)
    assert_problem(caller.send(valid, None), 415)  # a body without a type is not guessed at


def test_oversize_body_is_413(caller, unchanged):
    unchanged()
    padded = dict(caller.valid, padding="p" * MAX_BODY)
    assert_problem(caller.send(json.dumps(padded).encode()), 413)


def test_a_body_that_is_not_an_object_is_422(caller, unchanged):
    unchanged()
    for value in ([], "text", 42, None):
        assert_problem(caller.send_json(value), 422, field="body")


def test_unknown_fields_are_422_naming_them(caller, unchanged):
    unchanged()
    assert_problem(caller.send_json(dict(caller.valid, is_admin=True)), 422, field="body.is_admin")


def test_wrong_types_are_422_naming_the_field(caller, unchanged):
    unchanged()
    for name in caller.valid:
        wrong = 12345 if not isinstance(caller.valid[name], int) else "yes"
        assert_problem(caller.send_json(dict(caller.valid, **{name: wrong})), 422, field=f"body.{name}")


def test_oversize_strings_are_422_naming_the_field(caller, unchanged):
    unchanged()
    for name, value in caller.valid.items():
        if isinstance(value, str):
            oversize = OVERSIZE.get((caller.route, name), LONG)
            assert_problem(caller.send_json(dict(caller.valid, **{name: oversize})), 422, field=f"body.{name}")


def test_missing_required_fields_are_422_naming_them(strict_caller, unchanged):
    unchanged()
    for name in strict_caller.valid:
        if name == "role":  # register's role has a default
            continue
        partial = {k: v for k, v in strict_caller.valid.items() if k != name}
        assert_problem(strict_caller.send_json(partial), 422, field=f"body.{name}")


def test_no_body_at_all_is_422_for_routes_that_need_fields(strict_caller, unchanged):
    unchanged()
    assert_problem(strict_caller.send(b"", None), 422)


@pytest.mark.parametrize("email", ["no-at-sign", "two@@example.com", "spaces in@example.com", "a@b", " "])
def test_register_refuses_malformed_emails(client, email):
    before = _counts()
    resp = client.simulate_post(
        "/v1/auth/register", json={"email": email, "password": "long enough phrase", "full_name": "X"}
    )
    assert_problem(resp, 422, field="body.email")
    assert _counts() == before


def test_admins_cannot_be_registered(client):
    before = _counts()
    resp = client.simulate_post(
        "/v1/auth/register",
        json={"email": "boss@example.com", "password": "long enough phrase", "full_name": "Boss", "role": "admin"},
    )
    assert_problem(resp, 422, field="body.role")
    assert _counts() == before


def test_unknown_path_parameters_are_404(client, login):
    admin = make_user(role="admin")
    headers = {"Authorization": f"Bearer {login(admin)['access_token']}"}
    assert_problem(client.simulate_get("/v1/admin/users/not-a-uuid", headers=headers), 404)
    assert_problem(client.simulate_delete("/v1/me/sessions/not-a-uuid", headers=headers), 404)


def test_nul_characters_are_422_naming_the_field(caller, unchanged):
    # PostgreSQL text cannot hold NUL: refused at the edge, never a 500 from the driver.
    unchanged()
    for name, value in caller.valid.items():
        if isinstance(value, str):
            poisoned = value[:2] + "\x00" + value[2:]
            assert_problem(caller.send_json(dict(caller.valid, **{name: poisoned})), 422, field=f"body.{name}")


# Multi-line text among the valid bodies: line breaks and tabs are part of it.
MULTI_LINE = {
    ("start-conversation", "body"),
    ("post-message", "body"),
    ("admin-patch-user", "ban_reason"),
    ("counter-offer", "message"),
    ("reject-offer", "reason"),
    ("withdraw-offer", "reason"),
}
SINGLE_LINE_BREAKERS = ("\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\u2028", "\u2029")
TEXT_BREAKERS = ("\x0b", "\x0c", "\x1b")


def test_control_characters_are_422_naming_the_field(caller, unchanged):
    # A line break in a name would break the header of an email quoting it; text keeps \n, \r and \t only.
    unchanged()
    for name, value in caller.valid.items():
        if not isinstance(value, str):
            continue
        for control in TEXT_BREAKERS if (caller.route, name) in MULTI_LINE else SINGLE_LINE_BREAKERS:
            poisoned = value[:2] + control + value[2:]
            assert_problem(caller.send_json(dict(caller.valid, **{name: poisoned})), 422, field=f"body.{name}")


def test_a_line_break_in_a_name_is_refused_in_words(client):
    resp = client.simulate_post(
        "/v1/auth/register",
        json={"email": "new@example.com", "password": "long enough phrase", "full_name": "Ada\nBcc: eve@example.com"},
    )
    body = assert_problem(resp, 422, field="body.full_name")
    assert body["errors"][0]["message"] == "must be a single line without control characters, with a visible character"


def test_multi_line_text_keeps_its_line_breaks_and_tabs(client, login):
    from tests.api.test_conversations import make_listing

    listing = make_listing(make_user(role="seller"))
    headers = {"Authorization": f"Bearer {login(make_user())['access_token']}"}
    body = "Hello,\r\n\tis the garden south-facing?\nThanks"
    resp = client.simulate_post(
        "/v1/conversations", headers=headers, json={"property_id": str(listing.id), "body": body}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json["message"]["body"] == body


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"city": "Aus\ntin"}, "query.city"),
        ({"q": "pool\u2028"}, "query.q"),
        ({"features": "Pool,Ga\x85rage"}, "query.features[1]"),
    ],
)
def test_control_characters_in_a_query_are_422(client, params, field):
    assert_problem(client.simulate_get("/v1/properties", params=params), 422, field=field)


def test_integral_numbers_written_with_a_fraction_are_integers(client, login):
    # JSON Schema counts 1.0 as an integer; a client that follows it is understood.
    headers = {"Authorization": f"Bearer {login(make_user())['access_token']}"}
    ok = client.simulate_patch("/v1/me/notification-preferences", headers=headers, json={"digest_hour": 7.0})
    assert ok.status_code == 200, ok.text
    assert ok.json["digest_hour"] == 7
    saved = client.simulate_post(
        "/v1/me/saved-searches", headers=headers, json={"name": "Big", "query": {"min_beds": 3.0, "min_price": 1e6}}
    )
    assert saved.status_code == 201, saved.text
    assert (saved.json["query"]["min_beds"], saved.json["query"]["min_price"]) == (3, 1000000)
    assert_problem(
        client.simulate_patch("/v1/me/notification-preferences", headers=headers, json={"digest_hour": 7.5}),
        422,
        field="body.digest_hour",
    )


def test_nul_characters_in_a_query_are_422(client, login):
    headers = {"Authorization": f"Bearer {login(make_user(role='admin'))['access_token']}"}
    for params, field in (({"q": "ab\x00"}, "query.q"), ({"target_id": "\x00"}, "query.target_id")):
        path = "/v1/admin/users" if "q" in params else "/v1/admin/audit"
        assert_problem(client.simulate_get(path, headers=headers, params=params), 422, field=field)


@pytest.mark.parametrize("name", ["   ", "\t\n", "\u00a0"])
def test_blank_names_are_422_not_a_conflict(client, login, name):
    before = _counts()
    resp = client.simulate_post(
        "/v1/auth/register", json={"email": "blank@example.com", "password": "long enough phrase", "full_name": name}
    )
    assert_problem(resp, 422, field="body.full_name")
    assert _counts() == before
    headers = {"Authorization": f"Bearer {login(make_user())['access_token']}"}
    assert_problem(
        client.simulate_patch("/v1/me", headers=headers, json={"full_name": name}), 422, field="body.full_name"
    )


def test_non_ascii_emails_are_lowercased_like_ascii_ones(client):
    resp = client.simulate_post(
        "/v1/auth/register",
        json={"email": "ÜBER.Ärger@Example.com", "password": "long enough phrase", "full_name": "Ü"},
    )
    assert resp.status_code == 202, resp.text
    assert User.get(User.email == "über.ärger@example.com").full_name == "Ü"
    User.update(email_verified_at=utcnow()).where(User.email == "über.ärger@example.com").execute()
    login = client.simulate_post(
        "/v1/auth/login", json={"email": "über.ÄRGER@example.com", "password": "long enough phrase"}
    )
    assert login.status_code == 200


@pytest.mark.parametrize("sig", ["%C3%A9", "%E2%98%83" * 3, "abc%F0%9F%8F%A0"])
def test_non_ascii_signatures_are_403_on_signed_links(client, login, sig):
    download = client.simulate_get("/v1/downloads/exports/some.zip", query_string=f"expires=1297&sig={sig}")
    assert_problem(download, 403)

    headers = {"Authorization": f"Bearer {login(make_user())['access_token']}"}
    intent = client.simulate_post(
        "/v1/uploads/intents",
        headers=headers,
        json={"purpose": "document", "filename": "deed.pdf", "content_type": "application/pdf", "size": 10},
    )
    assert intent.status_code == 201, intent.text
    path = intent.json["upload_target"]["url"].removeprefix("http://hearth.test")
    put = client.simulate_put(
        path.split("?")[0],
        query_string=f"expires=9999999999&sig={sig}",
        body=b"%PDF-1.4\n",
        headers={"Content-Type": "application/pdf"},
    )
    assert_problem(put, 403)


# The money operations: every one that takes a JSON body is sent the bad bodies above. The provider's
# signed webhook is raw bytes checked before any decoding (tests/api/test_payment_webhooks.py).
MONEY_PATHS = re.compile(r"^/v1/(offers|escrows|admin/escrows|admin/payments|properties/\{[^}]+\}/offers)\b")
RAW_JSON_ROUTES = {("POST", "/v1/webhooks/stripe")}


def test_every_money_operation_with_a_json_body_is_sent_bad_bodies_here(client):
    document = client.simulate_get("/v1/openapi.json").json

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    covered = {(method, shape(path)) for method, path, _, _ in ROUTES.values()}
    with_bodies = {
        (method.upper(), shape(path))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if MONEY_PATHS.match(path) and "application/json" in (operation.get("requestBody") or {}).get("content", {})
    }
    assert len(with_bodies) >= 8, with_bodies
    assert with_bodies - RAW_JSON_ROUTES <= covered, "add the route to ROUTES"
