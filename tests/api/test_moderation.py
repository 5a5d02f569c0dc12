"""Blocks between people, reports about them, and the admins' report queue."""

from __future__ import annotations

import pytest

from models.audit import AuditEntry
from models.conversations import Message, UserBlock, UserReport
from tests.api.conftest import assert_problem
from tests.api.test_conversations import make_listing, started
from tests.factories import make_user


def block(client, headers, user_id):
    return client.simulate_put(f"/v1/me/blocks/{user_id}", headers=headers)


def post(client, headers, conversation_id, body="Hello"):
    return client.simulate_post(f"/v1/conversations/{conversation_id}/messages", headers=headers, json={"body": body})


def report(client, headers, **body):
    return client.simulate_post("/v1/reports", headers=headers, json=body)


def test_blocks_are_listed_newest_first_and_idempotent(client, auth_headers):
    me = make_user()
    first, second, third = make_user(full_name="First"), make_user(full_name="Second"), make_user(full_name="Third")
    headers = auth_headers(me)
    for person in (first, second, third):
        assert block(client, headers, person.id).status_code == 204
    assert block(client, headers, first.id).status_code == 204  # again: nothing changes
    listed = client.simulate_get("/v1/me/blocks", headers=headers).json
    assert [(b["user_id"], b["full_name"]) for b in listed["items"]] == [
        (str(third.id), "Third"),
        (str(second.id), "Second"),
        (str(first.id), "First"),
    ]
    page = client.simulate_get("/v1/me/blocks", headers=headers, params={"limit": 2}).json
    rest = client.simulate_get("/v1/me/blocks", headers=headers, params={"cursor": page["next_cursor"]}).json
    assert [b["full_name"] for b in page["items"] + rest["items"]] == ["Third", "Second", "First"]

    assert client.simulate_delete(f"/v1/me/blocks/{second.id}", headers=headers).status_code == 204
    assert client.simulate_delete(f"/v1/me/blocks/{second.id}", headers=headers).status_code == 204
    assert [b["full_name"] for b in client.simulate_get("/v1/me/blocks", headers=headers).json["items"]] == [
        "Third",
        "First",
    ]
    # Nobody else sees my blocks.
    assert client.simulate_get("/v1/me/blocks", headers=auth_headers(first)).json["items"] == []


def test_blocking_an_unknown_user_is_404_and_myself_422(client, auth_headers):
    me = make_user()
    headers = auth_headers(me)
    assert_problem(block(client, headers, make_listing(me).id), 404)
    assert_problem(block(client, headers, me.id), 422, field="path.user_id")
    assert_problem(client.simulate_put("/v1/me/blocks/not-a-uuid", headers=headers), 404)
    assert UserBlock.select().count() == 0


@pytest.mark.parametrize("blocker_role", ["buyer", "owner"])
def test_a_block_stops_messages_both_ways_but_hides_nothing(client, auth_headers, blocker_role):
    owner, buyer = make_user(role="seller"), make_user()
    owner_h, buyer_h = auth_headers(owner), auth_headers(buyer)
    conversation = started(client, buyer_h, make_listing(owner), "Before the block")["id"]
    blocker_h, blocked = (buyer_h, owner) if blocker_role == "buyer" else (owner_h, buyer)
    assert block(client, blocker_h, blocked.id).status_code == 204

    for headers in (owner_h, buyer_h):
        body = assert_problem(post(client, headers, conversation, "After the block"), 403)
        assert body["type"].endswith("/blocked")
        # What was said stays readable by both.
        items = client.simulate_get(f"/v1/conversations/{conversation}/messages", headers=headers).json["items"]
        assert [m["body"] for m in items] == ["Before the block"]
    assert Message.select().count() == 1

    assert client.simulate_delete(f"/v1/me/blocks/{blocked.id}", headers=blocker_h).status_code == 204
    assert post(client, owner_h, conversation, "After the unblock").status_code == 201


def test_a_block_of_one_of_the_listings_people_stops_the_buyer_in_that_conversation(client, auth_headers):
    owner, agent, buyer = make_user(role="seller"), make_user(role="agent"), make_user()
    conversation = started(client, auth_headers(buyer), make_listing(owner, agent=agent))["id"]
    block(client, auth_headers(agent), buyer.id)
    assert_problem(post(client, auth_headers(buyer), conversation), 403)
    # The owner, who blocked nobody and whom nobody blocked, still talks to the buyer.
    assert post(client, auth_headers(owner), conversation).status_code == 201


def test_reporting_a_user_about_a_message(client, auth_headers):
    owner, buyer = make_user(role="seller"), make_user()
    owner_h, buyer_h = auth_headers(owner), auth_headers(buyer)
    conversation = started(client, buyer_h, make_listing(owner))["id"]
    scam = post(client, owner_h, conversation, "Wire the deposit to this account today").json["id"]

    resp = report(
        client,
        buyer_h,
        user_id=str(owner.id),
        reason="scam",
        details="  Asked for a wire.  ",
        conversation_id=conversation,
        message_id=scam,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json["status"] == "open"
    row = UserReport.get_by_id(resp.json["id"])
    assert (row.reporter_id, row.reported_id, row.message_id, row.details) == (
        buyer.id,
        owner.id,
        scam,
        "Asked for a wire.",
    )
    # Reporting the same message again while the report is open returns it.
    again = report(client, buyer_h, user_id=str(owner.id), reason="spam", conversation_id=conversation, message_id=scam)
    assert (again.status_code, again.json["id"]) == (200, resp.json["id"])
    # About the user in general (no message) is another report.
    general = report(client, buyer_h, user_id=str(owner.id), reason="harassment")
    assert general.status_code == 201 and general.json["id"] != resp.json["id"]
    assert UserReport.select().count() == 2


def test_a_report_names_only_what_the_reporter_may_name(client, auth_headers):
    owner, buyer, stranger = make_user(role="seller"), make_user(), make_user()
    buyer_h = auth_headers(buyer)
    conversation = started(client, buyer_h, make_listing(owner), "My own message")["id"]
    mine = Message.get().id

    # A conversation the reported user (or the reporter) is not part of: 404, like one that does not exist.
    assert_problem(report(client, buyer_h, user_id=str(stranger.id), reason="spam", conversation_id=conversation), 404)
    assert_problem(
        report(client, auth_headers(stranger), user_id=str(owner.id), reason="spam", conversation_id=conversation), 404
    )
    # A message that is not the reported user's: 422.
    assert_problem(
        report(client, buyer_h, user_id=str(owner.id), reason="spam", conversation_id=conversation, message_id=mine),
        422,
        field="body.message_id",
    )
    assert_problem(
        report(client, buyer_h, user_id=str(owner.id), reason="spam", message_id=mine),
        422,
        field="body.conversation_id",
    )
    assert_problem(report(client, buyer_h, user_id=str(buyer.id), reason="spam"), 422, field="body.user_id")
    assert_problem(report(client, buyer_h, user_id=str(conversation), reason="spam"), 404)
    assert_problem(report(client, buyer_h, user_id=str(owner.id), reason="rude"), 422, field="body.reason")
    assert_problem(
        report(client, buyer_h, user_id=str(owner.id), reason="other", details="x" * 2001), 422, field="body.details"
    )
    assert UserReport.select().count() == 0


def test_admins_review_reports_and_read_the_messages_around_them(client, auth_headers, admin):
    owner, buyer = make_user(role="seller", full_name="Shady Seller"), make_user(full_name="Careful Buyer")
    owner_h, buyer_h, admin_h = auth_headers(owner), auth_headers(buyer), auth_headers(admin)
    conversation = started(client, buyer_h, make_listing(owner), "message 0")["id"]
    ids = [post(client, owner_h if n % 2 else buyer_h, conversation, f"message {n}").json["id"] for n in range(1, 60)]
    reported = ids[39 - 1]  # "message 39", sent by the owner
    filed = report(
        client, buyer_h, user_id=str(owner.id), reason="scam", conversation_id=conversation, message_id=reported
    )
    assert filed.status_code == 201, filed.text
    filed = filed.json
    other = report(client, auth_headers(make_user()), user_id=str(buyer.id), reason="spam").json

    queue = client.simulate_get("/v1/admin/reports", headers=admin_h).json
    assert [r["id"] for r in queue["items"]] == [other["id"], filed["id"]]
    item = queue["items"][1]
    assert (item["reporter"]["full_name"], item["reported"]["full_name"], item["reason"]) == (
        "Careful Buyer",
        "Shady Seller",
        "scam",
    )
    page = client.simulate_get("/v1/admin/reports", headers=admin_h, params={"limit": 1}).json
    rest = client.simulate_get("/v1/admin/reports", headers=admin_h, params={"cursor": page["next_cursor"]}).json
    assert [r["id"] for r in page["items"] + rest["items"]] == [other["id"], filed["id"]]

    detail = client.simulate_get(f"/v1/admin/reports/{filed['id']}", headers=admin_h).json
    assert detail["message"]["body"] == "message 39" and detail["message"]["sender_id"] == str(owner.id)
    bodies = [m["body"] for m in detail["messages"]]
    # 50 around it: the 20 after it are all there are, so 29 come from before it.
    assert bodies == [f"message {n}" for n in range(10, 60)]
    entry = AuditEntry.get(AuditEntry.action == "report.conversation_read")
    assert (entry.actor_id, entry.target_id) == (admin.id, filed["id"])
    assert entry.after["conversation_id"] == conversation and len(entry.after["message_ids"]) == 50
    # Reading the report does not make the admin a participant.
    assert_problem(client.simulate_get(f"/v1/conversations/{conversation}", headers=admin_h), 404)


def test_a_report_about_no_conversation_shows_no_messages(client, auth_headers, admin):
    filed = report(client, auth_headers(make_user()), user_id=str(make_user().id), reason="other").json
    detail = client.simulate_get(f"/v1/admin/reports/{filed['id']}", headers=auth_headers(admin)).json
    assert (detail["message"], detail["messages"], detail["conversation_id"]) == (None, [], None)
    assert AuditEntry.select().where(AuditEntry.action == "report.conversation_read").count() == 0
    assert_problem(client.simulate_get(f"/v1/admin/reports/{admin.id}", headers=auth_headers(admin)), 404)


def test_admins_resolve_a_report_once(client, auth_headers, admin):
    owner, buyer = make_user(role="seller"), make_user()
    filed = report(client, auth_headers(buyer), user_id=str(owner.id), reason="inappropriate").json
    admin_h = auth_headers(admin)
    url = f"/v1/admin/reports/{filed['id']}"

    resp = client.simulate_patch(url, headers=admin_h, json={"status": "actioned", "resolution": "Warned the seller"})
    assert resp.status_code == 200, resp.text
    assert (resp.json["status"], resp.json["resolution"], resp.json["resolved_by"]) == (
        "actioned",
        "Warned the seller",
        str(admin.id),
    )
    assert resp.json["resolved_at"] is not None
    entry = AuditEntry.get(AuditEntry.action == "report.resolved")
    assert (entry.actor_id, entry.target_type, entry.target_id) == (admin.id, "report", filed["id"])
    assert (entry.before, entry.after) == (
        {"status": "open"},
        {"status": "actioned", "resolution": "Warned the seller"},
    )

    body = assert_problem(client.simulate_patch(url, headers=admin_h, json={"status": "dismissed"}), 409)
    assert body["type"].endswith("/report-resolved")
    assert UserReport.get_by_id(filed["id"]).status == "actioned"
    assert_problem(client.simulate_patch(url, headers=admin_h, json={"status": "open"}), 422, field="body.status")
    assert_problem(
        client.simulate_patch(f"/v1/admin/reports/{owner.id}", headers=admin_h, json={"status": "dismissed"}), 404
    )
    # Once resolved, the same reporter's next report about the same user is a new one.
    again = report(client, auth_headers(buyer), user_id=str(owner.id), reason="inappropriate")
    assert again.status_code == 201 and again.json["id"] != filed["id"]
    listed = client.simulate_get("/v1/admin/reports", headers=admin_h, params={"status": "open"}).json["items"]
    assert [r["id"] for r in listed] == [again.json["id"]]


def test_the_report_queue_is_for_admins_only(client, auth_headers):
    buyer = make_user()
    filed = report(client, auth_headers(buyer), user_id=str(make_user().id), reason="spam").json
    headers = auth_headers(buyer)
    assert_problem(client.simulate_get("/v1/admin/reports", headers=headers), 403)
    assert_problem(client.simulate_get(f"/v1/admin/reports/{filed['id']}", headers=headers), 403)
    assert_problem(
        client.simulate_patch(f"/v1/admin/reports/{filed['id']}", headers=headers, json={"status": "dismissed"}), 403
    )
    assert UserReport.get_by_id(filed["id"]).status == "open"
