"""``POST /v1/me/export``: an archive of everything Hearth holds about me, behind a short-lived link."""

from __future__ import annotations

import io
import time
import zipfile
from urllib.parse import parse_qs, urlsplit

import msgspec

from models.accounts import User
from models.audit import AuditEntry
from models.jobs import Job, JobEffect
from tasks.exports import build_export
from tests.factories import PASSWORD, make_user


def _export(client, headers) -> dict:
    resp = client.simulate_post("/v1/me/export", headers=headers)
    assert resp.status_code == 202, resp.text
    assert resp.headers["Location"] == f"/v1/jobs/{resp.json['id']}"
    return resp.json


def _path(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://hearth.test"  # PUBLIC_URL of the test settings
    return f"{parts.path}?{parts.query}"


def _archive(client, url) -> dict:
    resp = client.simulate_get(_path(url))
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/zip"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="hearth-export.zip"'
    assert resp.headers["Cache-Control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
        return {name: msgspec.json.decode(archive.read(name)) for name in archive.namelist()}


def test_export_builds_an_archive_of_my_data_behind_a_signed_link(client, jobs, login, admin, auth_headers):
    me = make_user(full_name="Grace Hopper")
    other = make_user()
    pair = login(me)
    login(me)  # a second session
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    client.simulate_patch("/v1/me", headers=headers, json={"phone": "+14155550123"})
    # An admin acting on me (audited about me), and me... only my things go in the archive.
    client.simulate_patch(f"/v1/admin/users/{me.id}", headers=auth_headers(admin), json={"role": "seller"})
    client.simulate_patch(f"/v1/admin/users/{other.id}", headers=auth_headers(admin), json={"role": "agent"})

    job = _export(client, auth_headers(me))
    assert (job["kind"], job["status"]) == ("exports.build_export", "queued")
    assert jobs.run_pending() == 1

    done = client.simulate_get(f"/v1/jobs/{job['id']}", headers=headers).json
    assert done["status"] == "succeeded", done
    result = done["result"]
    # The account's own sections come first; other domains (listings, favorites, ...) add theirs after.
    assert result["sections"][:3] == ["profile", "sessions", "audit"]
    assert result["file"]["filename"] == "hearth-export.zip"
    link = urlsplit(result["download_url"])
    assert set(parse_qs(link.query)) == {"expires", "sig"}
    assert int(parse_qs(link.query)["expires"][0]) - time.time() <= 15 * 60

    files = _archive(client, result["download_url"])
    assert sorted(files) == sorted(["manifest.json"] + [f"{name}.json" for name in result["sections"]])
    assert files["manifest.json"]["user_id"] == str(me.id)
    profile = files["profile.json"]
    assert (profile["email"], profile["full_name"], profile["phone"], profile["role"]) == (
        me.email,
        "Grace Hopper",
        "+14155550123",
        "seller",
    )
    assert len(files["sessions.json"]) == 3  # two logins above and the one that asked for the export
    flat = msgspec.json.encode(files).decode()
    for secret in ("password", "hash", PASSWORD, pair["refresh_token"], "refresh_token"):
        assert secret not in flat
    actions = [entry["action"] for entry in files["audit.json"]]
    assert actions.count("admin.update_user") == 1  # about me, not the change to the other user
    about_me = next(e for e in files["audit.json"] if e["action"] == "admin.update_user")
    assert about_me["by"] == "hearth" and about_me["after"]["role"] == "seller"
    assert "ip" not in about_me and str(admin.id) not in flat and other.email not in flat
    assert "user.export_requested" in actions


def test_a_second_request_while_one_runs_answers_with_the_same_job(client, jobs, user, auth_headers):
    headers = auth_headers(user)
    first = _export(client, headers)
    second = _export(client, headers)
    assert second["id"] == first["id"]
    assert jobs.submitted == [first["id"]]  # enqueued once
    assert AuditEntry.select().where(AuditEntry.action == "user.export_requested").count() == 1
    jobs.run_pending()
    third = _export(client, headers)  # the first one finished: a new export
    assert third["id"] != first["id"]


def test_a_redelivered_export_does_not_build_the_archive_again(client, jobs, user, auth_headers):
    job = _export(client, auth_headers(user))
    jobs.run_pending()
    effect = JobEffect.get_by_id(f"job:{job['id']}:archive")
    Job.update(status="queued").where(Job.id == job["id"]).execute()  # as if the run was lost after the effect
    build_export(job["id"])
    assert JobEffect.get_by_id(f"job:{job['id']}:archive").result == effect.result
    assert Job.get_by_id(job["id"]).result["file"]["sha256"] == effect.result["sha256"]


def test_download_links_are_the_capability_and_expire(client, jobs, user, auth_headers, settings):
    headers = auth_headers(user)
    job = _export(client, headers)
    jobs.run_pending()
    url = client.simulate_get(f"/v1/jobs/{job['id']}", headers=headers).json["result"]["download_url"]
    path = _path(url)
    assert client.simulate_get(path).status_code == 200  # no token needed: the link is the capability

    base, query = path.split("?")
    params = parse_qs(query)
    expires, sig = params["expires"][0], params["sig"][0]
    tampered_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    assert client.simulate_get(f"{base}?expires={expires}&sig={tampered_sig}").status_code == 403
    longer = client.simulate_get(f"{base}?expires={int(expires) + 3600}&sig={sig}")
    assert longer.status_code == 403
    other_key = base.replace(str(job["id"]), "00000000-0000-0000-0000-000000000000")
    assert client.simulate_get(f"{other_key}?expires={expires}&sig={sig}").status_code == 403
    assert client.simulate_get(base).status_code == 422  # expires and sig are required

    from services.storage import make_storage

    storage = make_storage(settings, clock=lambda: time.time() - 3600)
    key = base.removeprefix("/v1/downloads/")
    stale_url, _ = storage.signed_url(key, 60)
    gone = client.simulate_get(_path(stale_url))
    assert gone.status_code == 410 and gone.json["type"].endswith("/link-expired")


def test_only_the_owner_gets_a_download_link(client, jobs, user, admin, auth_headers):
    job = _export(client, auth_headers(user))
    jobs.run_pending()
    seen_by_admin = client.simulate_get(f"/v1/jobs/{job['id']}", headers=auth_headers(admin))
    assert seen_by_admin.status_code == 200
    assert "download_url" not in seen_by_admin.json["result"]
    assert seen_by_admin.json["result"]["file"]["filename"] == "hearth-export.zip"


def test_reading_the_job_again_gives_a_fresh_link(client, jobs, user, auth_headers):
    headers = auth_headers(user)
    job = _export(client, headers)
    jobs.run_pending()
    stored = Job.get_by_id(job["id"]).result
    Job.update(
        result=dict(stored, download_url="http://hearth.test/expired", expires_at="2000-01-01T00:00:00+00:00")
    ).where(Job.id == job["id"]).execute()
    fresh = client.simulate_get(f"/v1/jobs/{job['id']}", headers=headers).json["result"]
    assert fresh["download_url"].startswith("http://hearth.test/v1/downloads/exports/")
    assert client.simulate_get(_path(fresh["download_url"])).status_code == 200


def test_export_of_a_deleted_account_ends_quietly(client, jobs, user, auth_headers):
    job = _export(client, auth_headers(user))
    Job.update(input={"user_id": "00000000-0000-0000-0000-000000000000"}).where(Job.id == job["id"]).execute()
    jobs.run_pending()
    assert Job.get_by_id(job["id"]).result == {"exported": False}
    assert User.get_by_id(user.id)  # nothing else touched


def test_export_has_my_conversations_notifications_saved_searches_and_uploads(client, jobs, auth_headers):
    from models.conversations import Conversation, ConversationParticipant, Message
    from models.notifications import NotificationDelivery, NotificationPreference, notify
    from models.saved_searches import SavedSearchAlert, add_saved_search
    from models.uploads import Upload
    from tests.search_listings import make_listing

    me = make_user(full_name="Barbara Liskov", email="barbara@example.com")
    seller = make_user(role="seller", full_name="Sam Seller", email="sam.private@example.com")
    agent = make_user(role="agent", full_name="Alex Agent")
    stranger = make_user(full_name="Stranger Danger")
    home = make_listing(seller, list_agent=agent.id)
    other_home = make_listing(seller)

    chat = Conversation.create(property=home.id, buyer=me.id)
    for person, role in ((me, "buyer"), (seller, "owner"), (agent, "agent")):
        ConversationParticipant.create(conversation=chat.id, user=person.id, role=role)
    hello = Message.create(conversation=chat.id, sender=me.id, body="Is the roof new?", client_id="device-msg-0001")
    Message.create(conversation=chat.id, sender=seller.id, body="Yes, from last year.")
    ConversationParticipant.update(last_read_message_id=hello.id).where(
        (ConversationParticipant.conversation == chat.id) & (ConversationParticipant.user == me.id)
    ).execute()
    theirs = Conversation.create(property=other_home.id, buyer=stranger.id)
    ConversationParticipant.create(conversation=theirs.id, user=stranger.id, role="buyer")
    ConversationParticipant.create(conversation=theirs.id, user=seller.id, role="owner")
    Message.create(conversation=theirs.id, sender=stranger.id, body="Secret offer of theirs")

    job = notify(
        me.id,
        "message.received",
        title="New message",
        body="Sam Seller wrote to you",
        data={"conversation_id": str(chat.id)},
        dedupe_key="export-test:1",
    )
    note_id = job.input["notification_id"]
    NotificationDelivery.create(
        notification=note_id,
        user=me.id,
        channel="email",
        status="sent",
        recipient="barbara@example.com",
        idempotency_key=f"notification:{note_id}:email",
    )
    notify(stranger.id, "message.received", title="Theirs", body="Not mine", data={}, dedupe_key="export-test:2")
    NotificationPreference.create(
        user=me.id, types={"saved_search.new_match": {"email": False}}, timezone="Europe/Paris", digest_hour=7
    )

    saved = add_saved_search(me.id, name="Near the park", query={"city": "Austin", "min_beds": 2}, alerts=True)
    SavedSearchAlert.create(saved_search=saved.id, property=home.id, reason="price_drop", price=29_000_000)
    add_saved_search(stranger.id, name="Stranger's search", query={"city": "Dallas"}, alerts=True)

    deed = Upload.create(
        owner=me.id,
        purpose="document",
        status="clean",
        filename="deed.pdf",
        content_type="application/pdf",
        size=1234,
        sha256="ab" * 32,
        storage_key="files/secret-location/deed.pdf",
    )
    Upload.create(
        owner=stranger.id, purpose="avatar", status="clean", filename="stranger.png", content_type="image/png", size=99
    )

    headers = auth_headers(me)
    export = _export(client, headers)
    jobs.run_pending()
    result = client.simulate_get(f"/v1/jobs/{export['id']}", headers=headers).json["result"]
    assert result["sections"][:3] == ["profile", "sessions", "audit"]  # the account's own sections stay first
    assert {"conversations", "notifications", "notification_preferences", "saved_searches", "uploads"} <= set(
        result["sections"]
    )
    files = _archive(client, result["download_url"])

    [conversation] = files["conversations.json"]
    assert (conversation["id"], conversation["property_id"], conversation["my_role"]) == (
        str(chat.id),
        str(home.id),
        "buyer",
    )
    assert conversation["last_read_message_id"] == hello.id
    assert conversation["participants"] == [
        {"user_id": str(seller.id), "full_name": "Sam Seller", "role": "owner"},
        {"user_id": str(agent.id), "full_name": "Alex Agent", "role": "agent"},
    ]
    assert [(m["body"], m["by_me"]) for m in conversation["messages"]] == [
        ("Is the roof new?", True),
        ("Yes, from last year.", False),
    ]

    [notification] = files["notifications.json"]
    assert (notification["id"], notification["type"], notification["body"]) == (
        note_id,
        "message.received",
        "Sam Seller wrote to you",
    )
    assert [(d["channel"], d["status"], d["recipient"]) for d in notification["deliveries"]] == [
        ("email", "sent", "barbara@example.com")
    ]

    prefs = files["notification_preferences.json"]
    assert (prefs["timezone"], prefs["digest_hour"]) == ("Europe/Paris", 7)
    assert prefs["types"]["saved_search.new_match"]["email"] is False
    assert prefs["types"]["saved_search.price_drop"]["email"] is True  # a default, shown as in effect

    [search] = files["saved_searches.json"]
    assert (search["name"], search["query"], search["alerts"]) == (
        "Near the park",
        {"city": "Austin", "min_beds": 2},
        True,
    )
    assert search["search_url"] == "/v1/properties?city=Austin&min_beds=2"
    assert [(a["property_id"], a["reason"], a["price"]) for a in search["alerts_sent"]] == [
        (str(home.id), "price_drop", 29_000_000)
    ]

    [upload] = files["uploads.json"]
    assert (upload["id"], upload["filename"], upload["size"], upload["status"]) == (
        str(deed.id),
        "deed.pdf",
        1234,
        "clean",
    )

    flat = msgspec.json.encode(files).decode()
    for foreign in (
        "Stranger Danger",
        str(stranger.id),
        "Secret offer",
        "Not mine",
        "Stranger's search",
        "stranger.png",
        "sam.private@example.com",
        "secret-location",
        "device-msg-0001",
    ):
        assert foreign not in flat
