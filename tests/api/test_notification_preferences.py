"""``/v1/me/notification-preferences``: defaults, partial changes, and validation that changes nothing."""

from __future__ import annotations

import datetime

from models.accounts import User
from models.base import utcnow
from models.notifications import TYPES, NotificationPreference, Preferences
from tests.api.conftest import assert_problem

URL = "/v1/me/notification-preferences"


def stored(user) -> tuple:
    row = NotificationPreference.get_or_none(NotificationPreference.user == user.id)
    return None if row is None else (row.types, row.quiet_start, row.quiet_end, row.timezone, row.digest_hour)


def patch(client, headers, body: dict):
    return client.simulate_patch(URL, headers=headers, json=body)


def test_a_new_user_sees_every_type_with_its_defaults(client, user, auth_headers):
    resp = client.simulate_get(URL, headers=auth_headers(user))
    assert resp.status_code == 200, resp.text
    assert resp.json == {
        "types": TYPES,
        "quiet_hours": None,
        "timezone": "UTC",
        "digest_hour": 8,
        "phone": {"number": None, "verified": False},
    }


def test_a_patch_changes_only_what_it_names(client, user, auth_headers):
    headers = auth_headers(user)
    resp = patch(
        client,
        headers,
        {
            "types": {"message.received": {"email": False}},
            "quiet_hours": {"start": "22:00", "end": "07:30"},
            "timezone": "Europe/Paris",
            "digest_hour": 18,
        },
    )
    assert resp.status_code == 200, resp.text
    view = resp.json
    assert view["types"]["message.received"] == dict(TYPES["message.received"], email=False)
    assert view["types"]["saved_search.new_match"] == TYPES["saved_search.new_match"]
    assert (view["quiet_hours"], view["timezone"], view["digest_hour"]) == (
        {"start": "22:00", "end": "07:30"},
        "Europe/Paris",
        18,
    )

    # A second patch of another field of the same type keeps the first choice.
    view = patch(client, headers, {"types": {"message.received": {"digest": "daily"}}}).json
    assert view["types"]["message.received"] == dict(TYPES["message.received"], email=False, digest="daily")
    assert (view["quiet_hours"], view["timezone"]) == ({"start": "22:00", "end": "07:30"}, "Europe/Paris")
    # What the delivery engine reads is what the API showed.
    prefs = Preferences.of(user.id)
    assert prefs.channels("message.received")["email"] is False
    assert (prefs.quiet_start, prefs.quiet_end, prefs.timezone) == (
        datetime.time(22),
        datetime.time(7, 30),
        "Europe/Paris",
    )
    assert client.simulate_get(URL, headers=headers).json == view

    # null clears quiet hours; leaving them out keeps them.
    assert patch(client, headers, {"digest_hour": 6}).json["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    assert patch(client, headers, {"quiet_hours": None}).json["quiet_hours"] is None
    assert Preferences.of(user.id).quiet_until(utcnow()) is None


def test_invalid_preferences_are_422_naming_the_field_and_change_nothing(client, user, auth_headers):
    headers = auth_headers(user)
    patch(client, headers, {"types": {"message.received": {"email": False}}, "timezone": "America/Chicago"})
    before = stored(user)
    cases = [
        ({"types": {"message.sent": {"email": False}}}, "body.types.message.sent"),
        ({"types": {"message.received": {"fax": True}}}, "body.types.message.received.fax"),
        ({"types": {"message.received": {"digest": "weekly"}}}, "body.types.message.received.digest"),
        ({"timezone": "Mars/Olympus_Mons"}, "body.timezone"),
        ({"timezone": "../../etc/passwd"}, "body.timezone"),
        ({"quiet_hours": {"start": "22:00"}}, "body.quiet_hours.end"),
        ({"quiet_hours": {"start": "24:00", "end": "07:00"}}, "body.quiet_hours.start"),
        ({"quiet_hours": {"start": "07:00", "end": "07:00"}}, "body.quiet_hours.end"),
        ({"digest_hour": 24}, "body.digest_hour"),
        # One bad member spoils the whole patch: the valid one beside it is not applied either.
        ({"digest_hour": 5, "timezone": "Nowhere/Special"}, "body.timezone"),
    ]
    for body, field in cases:
        assert_problem(patch(client, headers, body), 422, field=field)
    assert stored(user) == before


def test_text_messages_need_a_verified_phone(client, user, auth_headers):
    headers = auth_headers(user)
    body = {"types": {"saved_search.price_drop": {"sms": True}}}
    assert_problem(patch(client, headers, body), 422, field="body.types.saved_search.price_drop.sms")
    assert stored(user) is None

    # A number that was set but never verified does not count either.
    User.update(phone="+14155550123").where(User.id == user.id).execute()
    assert_problem(patch(client, headers, body), 422, field="body.types.saved_search.price_drop.sms")
    assert client.simulate_get(URL, headers=headers).json["phone"] == {"number": "+14155550123", "verified": False}

    User.update(phone_verified_at=utcnow()).where(User.id == user.id).execute()
    resp = patch(client, headers, body)
    assert resp.status_code == 200, resp.text
    assert resp.json["types"]["saved_search.price_drop"]["sms"] is True
    assert resp.json["phone"] == {"number": "+14155550123", "verified": True}
    # Turning it off never needs a phone.
    assert patch(client, headers, {"types": {"saved_search.price_drop": {"sms": False}}}).status_code == 200
