"""``/v1/unsubscribe``: opening a link changes nothing; the one-click POST (or JSON) turns email off."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from models.audit import AuditEntry
from models.notifications import TYPES, NotificationPreference, Preferences
from services.unsubscribe import unsubscribe_token
from tests.api.conftest import assert_problem
from tests.factories import make_user

URL = "/v1/unsubscribe"


@pytest.fixture
def jane():
    return make_user(email="jane.doe@example.com")


def token(settings, user, type_: str) -> str:
    return unsubscribe_token(settings.secret_key, user.id, type_)


def email_on(user) -> dict:
    return {name: Preferences.of(user.id).channels(name)["email"] for name in TYPES}


def test_opening_the_link_shows_what_it_would_do_and_changes_nothing(client, settings, jane):
    for _ in range(3):  # a mail scanner, the preview pane, the user
        resp = client.simulate_get(URL, params={"token": token(settings, jane, "message.received")})
        assert resp.status_code == 200, resp.text
        assert resp.json == {"type": "message.received", "email": "j***@example.com", "unsubscribed": False}
    assert NotificationPreference.get_or_none(NotificationPreference.user == jane.id) is None
    assert all(email_on(jane).values())


def test_the_one_click_post_turns_that_types_email_off(client, settings, jane):
    query = {"token": token(settings, jane, "saved_search.new_match")}
    resp = client.simulate_post(
        URL,
        params=query,
        body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json == {"type": "saved_search.new_match", "email": "j***@example.com", "unsubscribed": True}
    assert email_on(jane) == {name: name != "saved_search.new_match" for name in TYPES}
    # In-app notifications of that type stay.
    assert Preferences.of(jane.id).channels("saved_search.new_match")["in_app"] is True
    assert client.simulate_get(URL, params=query).json["unsubscribed"] is True
    assert (
        AuditEntry.select()
        .where((AuditEntry.action == "user.unsubscribe") & (AuditEntry.target_id == str(jane.id)))
        .count()
        == 1
    )
    # Again: still 200, still off.
    again = client.simulate_post(
        URL,
        params=query,
        body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 200 and again.json["unsubscribed"] is True


def test_a_json_post_of_the_everything_token_turns_all_email_off(client, settings, jane, auth_headers):
    resp = client.simulate_post(URL, json={"token": token(settings, jane, "*")})
    assert resp.status_code == 200, resp.text
    assert resp.json == {"type": "*", "email": "j***@example.com", "unsubscribed": True}
    assert not any(email_on(jane).values())
    # The user sees it in their preferences, and can turn email back on there.
    view = client.simulate_get("/v1/me/notification-preferences", headers=auth_headers(jane)).json
    assert not any(t["email"] for t in view["types"].values())


def test_bad_tokens_are_404_and_change_nothing(client, settings, jane):
    other_secret = unsubscribe_token("another deployment's secret", jane.id, "*")
    deleted = make_user()
    orphan = token(settings, deleted, "*")
    deleted.delete_instance()
    for bad in ("nonsense", other_secret, token(settings, jane, "*")[:-2] + "AA", orphan):
        assert_problem(client.simulate_get(URL, params={"token": bad}), 404)
        assert_problem(client.simulate_post(URL, params={"token": bad}), 404)
        assert_problem(client.simulate_post(URL, json={"token": bad}), 404)
    assert NotificationPreference.select().count() == 0


def mailed_before_signing_moved(secret: str, user_id, type_: str) -> str:
    """A token as Hearth built it by hand before ``services.signing``: links like it sit in mailboxes for years."""
    key = hashlib.sha256(f"unsubscribe:{secret}".encode()).digest()
    payload = json.dumps([str(user_id), type_], separators=(",", ":")).encode()
    sig = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(sig + payload).rstrip(b"=").decode()


def test_links_mailed_long_ago_still_unsubscribe(client, settings, jane):
    old = mailed_before_signing_moved(settings.secret_key, jane.id, "message.received")
    assert old == token(settings, jane, "message.received")
    resp = client.simulate_post(
        URL,
        params={"token": old},
        body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json["unsubscribed"] is True
    assert email_on(jane)["message.received"] is False
    assert email_on(jane)["saved_search.new_match"] is True


def test_malformed_requests_are_4xx_and_change_nothing(client, settings, jane):
    good = token(settings, jane, "*")
    assert_problem(client.simulate_get(URL), 422, field="query.token")
    assert_problem(client.simulate_post(URL), 422, field="query.token")
    assert_problem(client.simulate_post(URL, body="{", headers={"Content-Type": "application/json"}), 400)
    assert_problem(client.simulate_post(URL, json={"token": good, "also": 1}), 422, field="body.also")
    assert_problem(client.simulate_post(URL, json={"token": 7}), 422, field="body.token")
    big = json.dumps({"token": good, "pad": "x" * 2000})
    assert_problem(client.simulate_post(URL, body=big, headers={"Content-Type": "application/json"}), 413)
    assert NotificationPreference.select().count() == 0
