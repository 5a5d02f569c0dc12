"""``/v1/me/notifications``: my inbox, unread counts, reading; the operators' delivery and suppression views."""

from __future__ import annotations

import datetime
import uuid

from models.audit import AuditEntry
from models.base import utcnow
from models.notifications import EmailSuppression, Notification, NotificationDelivery, delivery_key
from services.events import EventBus
from tests.api.conftest import assert_problem
from tests.factories import make_user


def make_notification(
    user, *, minutes_ago: int = 0, in_app: bool | None = True, read: bool = False, title: str = "New message"
) -> Notification:
    at = utcnow() - datetime.timedelta(minutes=minutes_ago)
    return Notification.create(
        user=user.id,
        type="message.received",
        title=title,
        body="Hello",
        data={"conversation_id": str(uuid.uuid4())},
        in_app=in_app,
        created_at=at,
        read_at=at if read else None,
    )


def inbox(client, headers, **params) -> dict:
    resp = client.simulate_get("/v1/me/notifications", headers=headers, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json


def test_my_inbox_lists_in_app_notifications_newest_first_with_the_unread_count(client, user, auth_headers):
    old = make_notification(user, minutes_ago=30, title="Old", read=True)
    new = make_notification(user, minutes_ago=1, title="New")
    make_notification(user, minutes_ago=2, in_app=False, title="Email only")
    make_notification(user, minutes_ago=3, in_app=None, title="Not fanned out yet")
    make_notification(make_user(), title="Someone else's")
    headers = auth_headers(user)

    page = inbox(client, headers)
    assert [i["title"] for i in page["items"]] == ["New", "Old"]
    assert page["unread_count"] == 1
    first = page["items"][0]
    assert (first["id"], first["read"], first["read_at"], first["type"]) == (
        str(new.id),
        False,
        None,
        "message.received",
    )
    assert "conversation_id" in first["data"]
    assert [i["id"] for i in inbox(client, headers, unread="true")["items"]] == [str(new.id)]
    assert [i["id"] for i in inbox(client, headers, unread="false")["items"]] == [str(old.id)]


def test_pages_follow_the_cursor_without_gaps_or_repeats(client, user, auth_headers):
    made = [make_notification(user, minutes_ago=i, title=f"n{i}") for i in range(5)]
    headers = auth_headers(user)
    seen, cursor = [], None
    while True:
        page = inbox(client, headers, limit=2, **({"cursor": cursor} if cursor else {}))
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [str(n.id) for n in made]
    assert_problem(
        client.simulate_get("/v1/me/notifications", headers=headers, params={"cursor": "forged"}),
        422,
        field="query.cursor",
    )
    assert_problem(
        client.simulate_get("/v1/me/notifications", headers=headers, params={"limit": 101}), 422, field="query.limit"
    )


def test_reading_one_is_idempotent_and_other_tabs_hear_of_it(client, user, auth_headers, settings, redis):
    note = make_notification(user)
    make_notification(user, minutes_ago=5)
    headers = auth_headers(user)
    for _ in range(2):
        resp = client.simulate_post(f"/v1/me/notifications/{note.id}/read", headers=headers)
        assert resp.status_code == 204, resp.text
    assert inbox(client, headers)["unread_count"] == 1
    first_read = Notification.get_by_id(note.id).read_at
    assert first_read is not None
    events = EventBus(redis, settings.redis_prefix).history(f"user:{user.id}")
    reads = [e for e in events if e["type"] == "notification.read"]
    assert [(e["data"]["notification_id"], e["data"]["unread_count"]) for e in reads] == [(str(note.id), 1)]


def test_another_users_notification_is_404_and_stays_unread(client, user, auth_headers):
    theirs = make_notification(make_user())
    headers = auth_headers(user)
    assert_problem(client.simulate_post(f"/v1/me/notifications/{theirs.id}/read", headers=headers), 404)
    assert_problem(client.simulate_post(f"/v1/me/notifications/{uuid.uuid4()}/read", headers=headers), 404)
    assert_problem(client.simulate_post("/v1/me/notifications/not-a-uuid/read", headers=headers), 404)
    assert Notification.get_by_id(theirs.id).read_at is None


def test_read_all_marks_only_mine_and_says_how_many(client, user, auth_headers):
    for minutes in range(3):
        make_notification(user, minutes_ago=minutes)
    make_notification(user, read=True)
    theirs = make_notification(make_user())
    headers = auth_headers(user)
    resp = client.simulate_post("/v1/me/notifications/read-all", headers=headers)
    assert (resp.status_code, resp.json) == (200, {"marked": 3})
    assert client.simulate_post("/v1/me/notifications/read-all", headers=headers).json == {"marked": 0}
    assert inbox(client, headers)["unread_count"] == 0
    assert Notification.get_by_id(theirs.id).read_at is None


# --- Operators -------------------------------------------------------------------------------


def make_delivery(user, channel: str, status: str) -> NotificationDelivery:
    note = make_notification(user)
    return NotificationDelivery.create(
        notification=note.id,
        user=user.id,
        channel=channel,
        status=status,
        recipient=user.email if channel == "email" else "+14155550123",
        idempotency_key=delivery_key(note.id, channel),
        attempts=1,
    )


def test_admins_see_deliveries_newest_first_and_filtered(client, admin, auth_headers):
    ann, bob = make_user(), make_user()
    first = make_delivery(ann, "email", "sent")
    second = make_delivery(bob, "sms", "failed")
    third = make_delivery(ann, "email", "delivered")
    headers = auth_headers(admin)

    def ids(**params):
        resp = client.simulate_get("/v1/admin/notification-deliveries", headers=headers, params=params)
        assert resp.status_code == 200, resp.text
        return [item["id"] for item in resp.json["items"]]

    assert ids() == [third.id, second.id, first.id]
    assert ids(user_id=str(ann.id)) == [third.id, first.id]
    assert ids(channel="sms") == [second.id]
    assert ids(status="delivered") == [third.id]
    item = client.simulate_get("/v1/admin/notification-deliveries", headers=headers, params={"status": "failed"}).json[
        "items"
    ][0]
    assert (item["notification_id"], item["user_id"], item["recipient"], item["attempts"]) == (
        str(second.notification_id),
        str(bob.id),
        "+14155550123",
        1,
    )
    for params, field in (({"status": "lost"}, "query.status"), ({"user_id": "nobody"}, "query.user_id")):
        resp = client.simulate_get("/v1/admin/notification-deliveries", headers=headers, params=params)
        assert_problem(resp, 422, field=field)
    assert_problem(client.simulate_get("/v1/admin/notification-deliveries", headers=auth_headers(ann)), 403)


def test_admins_list_and_lift_email_suppressions_with_an_audit_entry(client, admin, auth_headers):
    EmailSuppression.create(email="gone@example.com", reason="bounce", detail="550 no such user")
    EmailSuppression.create(email="angry@example.com", reason="spamreport")
    headers = auth_headers(admin)
    page = client.simulate_get("/v1/admin/email-suppressions", headers=headers).json
    assert {(i["email"], i["reason"]) for i in page["items"]} == {
        ("gone@example.com", "bounce"),
        ("angry@example.com", "spamreport"),
    }
    only = client.simulate_get("/v1/admin/email-suppressions", headers=headers, params={"reason": "bounce"}).json
    assert [i["email"] for i in only["items"]] == ["gone@example.com"]

    resp = client.simulate_delete("/v1/admin/email-suppressions/Gone@Example.com", headers=headers)
    assert resp.status_code == 204, resp.text
    assert EmailSuppression.get_or_none(EmailSuppression.email == "gone@example.com") is None
    entry = AuditEntry.get(AuditEntry.action == "admin.delete_email_suppression")
    assert (str(entry.actor_id), entry.target_id, entry.before["reason"]) == (
        str(admin.id),
        "gone@example.com",
        "bounce",
    )
    assert_problem(client.simulate_delete("/v1/admin/email-suppressions/gone@example.com", headers=headers), 404)
    buyer = auth_headers(make_user())
    assert_problem(client.simulate_delete("/v1/admin/email-suppressions/angry@example.com", headers=buyer), 403)
    assert EmailSuppression.get_or_none(EmailSuppression.email == "angry@example.com") is not None
