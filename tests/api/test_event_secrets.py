"""No event carries a secret: every event type Hearth publishes, scanned for links, tokens and codes.

Events are appended to streams that are replayed for days to anyone who may
join the channel (admins may join any job's), so a signed link, an emailed
token or a texted code in an event is readable by people it was not meant for.
Owners fetch those over REST. The test drives each kind of work through the
API and the real tasks, then reads back every stream under the test's prefix.
"""

from __future__ import annotations

import datetime
import json
import re
import time

import pyotp
import pytest

from models.base import utcnow
from models.jobs import Job
from models.notifications import Notification
from services.events import EventBus
from services.payments import sign_event
from tasks.app import app as celery_app
from tasks.base import JobTask
from tasks.jobs import sweep_jobs
from tests.api.money_flow import drive_deal
from tests.api.test_conversations import make_listing, started
from tests.api.test_phone_verification import code_in, request_code, texts
from tests.conftest import create_database, drop_database, make_settings
from tests.factories import make_user
from tests.imports.supabase_db import SourceDatabase, population
from tests.services.backends import backend_overrides, png

# A signed link (local storage's ``sig=``, S3's presigned ``X-Amz-Signature``), a link carrying a
# token, an access token (a JWT) or a key that names a secret.
SECRET_PATTERNS = [
    re.compile(r"[?&](sig|X-Amz-Signature|X-Amz-Credential|token|code)="),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\."),
    re.compile(r'"(download_url|upload_url|token|access_token|refresh_token|code|password|secret|client_secret)"\s*:'),
    # A payment's client secret (Stripe's ``pi_..._secret_...``), which completes the buyer's deposit.
    re.compile(r"_secret_"),
]
# Every job kind a user's action starts, and every event type; a new one must be driven here too.
DRIVEN_KINDS = {
    "accounts.send_verification_email",
    "accounts.send_password_reset",
    "accounts.send_signup_notice",
    "accounts.send_unlock_link",
    "accounts.send_mfa_notice",
    "escrows.collect_deposit",
    "escrows.settle",
    "exports.build_export",
    "imports.run_supabase",
    "jobs.selftest",
    "notifications.fan_out",
    "payments.apply_event",
    "payments.retry",
    "phone.send_code",
    "search.rebuild_index",
    "uploads.scan_upload",
}
# Jobs with no owner publish no job events (their effects may: a notification, a message).
OWNERLESS_KINDS = {
    "accounts.send_password_reset",
    "accounts.send_signup_notice",
    "accounts.send_unlock_link",
    "escrows.collect_deposit",
    "notifications.fan_out",
    "payments.apply_event",
}
# Ownerless jobs that publish nothing at all: a daily digest (beat), a listing's reindex, an import chunk's reindex.
# The backup job (beat-made, ownerless) carries only the configured target and the backup's path;
# tests/tasks/test_backup_schedule.py runs it.
SILENT_KINDS = {
    "backups.run_backup",
    "notifications.send_digest",
    "search.reindex_property",
    "search.reindex_properties",
}
EVENT_TYPES = {
    "job.queued",
    "job.started",
    "job.progress",
    "job.succeeded",
    "job.cancelled",
    "job.requeued",
    "job.failed",
    "upload.clean",
    "notification.created",
    "notification.read",
    "message.created",
    "conversation.read",
    "offer.received",
    "offer.rejected",
    "offer.countered",
    "offer.accepted",
    "offer.backup",
    "offer.withdrawn",
    "escrow.contingency_removed",
    "escrow.instructed",
}


@pytest.fixture(scope="module")
def supabase_source():
    """A Supabase-shaped source for the import job; its URL carries a password that must stay out of events."""
    name, url = create_database("hearth_supabase_src")
    source = SourceDatabase(url)
    source.create_schema()
    source.load(population())
    yield source, url.replace("postgres@", "postgres:src-db-secret@", 1)
    source.close()
    drop_database(name)


@pytest.fixture
def settings(database, tmp_path, redis_prefix, supabase_source):
    return make_settings(
        database,
        tmp_path,
        redis_prefix=redis_prefix,
        supabase_source_db_url=supabase_source[1],
        message_notification_delay=0,
        rate_limit_auth="1000/minute",
        login_lockout_threshold=2,
        login_account_lock_addresses=2,
        **backend_overrides("local"),
    )


def all_events(redis, prefix: str) -> list[tuple[str, dict, str]]:
    bus = EventBus(redis, prefix)
    events = []
    for key in redis.scan_iter(match=f"{prefix}stream:*"):
        channel = key.decode()[len(f"{prefix}stream:") :]
        raw = {eid.decode(): fields[b"e"].decode() for eid, fields in redis.xrange(key)}
        for event in bus.history(channel):
            events.append((channel, event, raw[event["id"]]))
    return events


def test_no_event_of_any_type_carries_a_link_token_or_code(
    client, jobs, services, outbox, settings, redis, auth_headers, admin
):
    # Accounts: a verification email and a password reset, each a job with its owner.
    resp = client.simulate_post(
        "/v1/auth/register",
        json={
            "email": "ada@example.com",
            "password": "analytical engine 1843",
            "full_name": "Ada Lovelace",
            "role": "seller",
        },
    )
    assert resp.status_code == 202, resp.text
    jobs.run_pending()
    secrets = {outbox.token_for("ada@example.com")}
    assert client.simulate_post("/v1/auth/verify-email", json={"token": next(iter(secrets))}).status_code == 204
    assert client.simulate_post("/v1/auth/password/forgot", json={"email": "ada@example.com"}).status_code == 202
    jobs.run_pending()
    secrets.add(outbox.token_for("ada@example.com"))
    login = client.simulate_post(
        "/v1/auth/login", json={"email": "ada@example.com", "password": "analytical engine 1843"}
    ).json
    secrets |= {login["access_token"], login["refresh_token"]}
    owner_headers = {"Authorization": f"Bearer {login['access_token']}"}
    # Two-factor login: an authenticator app enrolled and activated (the owner is told by email);
    # its secret and the recovery codes are shown once, over REST, and nowhere else.
    enrolled = client.simulate_post("/v1/auth/mfa/totp", headers=owner_headers, json={"friendly_name": "Phone"})
    assert enrolled.status_code == 201, enrolled.text
    activated = client.simulate_post(
        f"/v1/auth/mfa/{enrolled.json['id']}/activate",
        headers=owner_headers,
        json={"code": pyotp.TOTP(enrolled.json["secret"]).now()},
    )
    assert activated.status_code == 200, activated.text
    jobs.run_pending()
    secrets |= {enrolled.json["secret"], *activated.json["recovery_codes"]}

    # Someone signs up with the taken address (the owner is told by email), then tries passwords
    # from several addresses until the account locks (the owner gets an unlock link).
    again = client.simulate_post(
        "/v1/auth/register",
        json={"email": "ada@example.com", "password": "another engine 1843", "full_name": "Not Ada", "role": "buyer"},
    )
    assert again.status_code == 202, again.text
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        for _ in range(2):
            client.simulate_post(
                "/v1/auth/login", json={"email": "ada@example.com", "password": "wrong guess 1"}, remote_addr=address
            )
    jobs.run_pending()
    secrets.add(outbox.token_for("ada@example.com"))

    # A texted code.
    assert request_code(client, owner_headers).status_code == 202
    jobs.run_pending()
    secrets.add(code_in(texts(settings)[-1]))

    # An upload and its scan; its signed download link.
    resp = client.simulate_post(
        "/v1/uploads",
        params={"purpose": "listing_photo", "filename": "a.png"},
        body=png(),
        headers={**owner_headers, "Content-Type": "application/octet-stream"},
    )
    assert resp.status_code == 202, resp.text
    upload_id = resp.json["id"]
    jobs.run_pending()
    link = client.simulate_get(f"/v1/uploads/{upload_id}/download", headers=owner_headers)
    assert link.status_code == 302
    secrets.add(link.headers["location"].split("sig=", 1)[1])

    # A conversation: a message, its notification (fan-out job), read receipts.
    from models.accounts import User

    owner = User.get(User.email == "ada@example.com")
    buyer = make_user(full_name="Bea Buyer")
    buyer_headers = auth_headers(buyer)
    listing = make_listing(owner)
    conversation = started(client, buyer_headers, listing)
    jobs.run_pending()
    notification = Notification.get(Notification.user == owner.id)
    assert client.simulate_post(f"/v1/me/notifications/{notification.id}/read", headers=owner_headers).status_code in (
        200,
        204,
    )
    assert (
        client.simulate_post(f"/v1/conversations/{conversation['id']}/read", headers=owner_headers, json={}).status_code
        == 200
    )

    # The export: its signed link is read over REST by its owner, never sent.
    resp = client.simulate_post("/v1/me/export", headers=owner_headers)
    assert resp.status_code == 202, resp.text
    jobs.run_pending()
    export = client.simulate_get(resp.headers["location"], headers=owner_headers).json
    secrets.add(export["result"]["download_url"].split("sig=", 1)[1])

    # Admin work on behalf of the owner, a cancelled job, a reindex, a job of a dead worker swept.
    admin_headers = auth_headers(admin)
    selftest = client.simulate_post(
        "/v1/admin/jobs/selftest", headers=admin_headers, json={"steps": 2, "step_ms": 0, "owner_id": str(owner.id)}
    )
    assert selftest.status_code == 202, selftest.text
    cancelled = client.simulate_post(
        "/v1/admin/jobs/selftest", headers=admin_headers, json={"steps": 1, "step_ms": 0, "owner_id": str(owner.id)}
    ).json
    assert client.simulate_post(f"/v1/jobs/{cancelled['id']}/cancel", headers=owner_headers).status_code == 200
    jobs.submitted.remove(cancelled["id"])
    assert client.simulate_post("/v1/admin/search/reindex", headers=admin_headers).status_code == 202
    jobs.run_pending()
    # The Supabase import, with progress events; its source URL's password is never in one.
    imported = client.simulate_post(
        "/v1/admin/imports", headers=admin_headers, json={"only": ["auth.users", "auth.identities"]}
    )
    assert imported.status_code == 202, imported.text
    jobs.run_pending()
    secrets.add("src-db-secret")
    ago = utcnow() - datetime.timedelta(seconds=5)
    Job.create(kind="jobs.selftest", owner=owner.id, status="running", attempts=1, lease_expires_at=ago)
    Job.create(kind="jobs.selftest", owner=owner.id, status="running", attempts=5, max_attempts=5, lease_expires_at=ago)
    sweep_jobs()
    jobs.run_pending()

    # Money: offers, an escrow's deposit collected and reported by the provider, released and paid out.
    # The buyer fetches the deposit's client secret over REST; the provider signs its webhook.
    deal = drive_deal(
        client,
        jobs,
        services,
        auth_headers,
        seller_headers=owner_headers,
        buyer_headers=buyer_headers,
        admin_headers=admin_headers,
        listing=make_listing(owner, address="9 Ledger Lane"),
    )
    secrets |= {deal.client_secret, deal.client_secret.split("_secret_", 1)[1], deal.signature}
    # The provider takes the payout back (a reversed transfer); an admin pays it again.
    [payout] = [p for p in deal.escrow["payments"] if p["kind"] == "payout"]
    reversal = json.dumps(
        {
            "id": "evt_reversal_1",
            "object": "event",
            "type": "transfer.reversed",
            "created": int(time.time()),
            "data": {"object": {"id": payout["provider_ref"], "object": "transfer", "amount": payout["amount"]}},
        }
    ).encode()
    signature = sign_event(reversal, settings.stripe_webhook_secret, int(time.time()))
    signed = {"Content-Type": "application/json", "Stripe-Signature": signature}
    assert client.simulate_post("/v1/webhooks/stripe", body=reversal, headers=signed).status_code == 200
    jobs.run_pending()
    retried = client.simulate_post(f"/v1/admin/payments/{payout['id']}/retry", headers=admin_headers)
    assert retried.status_code == 202, retried.text
    jobs.run_pending()
    secrets.add(signature)

    events = all_events(redis, settings.redis_prefix)
    kinds = {event["data"]["kind"] for _, event, _ in events if event["type"].startswith("job.")}
    types = {event["type"] for _, event, _ in events}
    registered = {
        name.removeprefix("tasks.")
        for name, task in celery_app.tasks.items()
        if isinstance(task, JobTask) and not name.startswith("tasks.testing")
    }
    assert registered - SILENT_KINDS <= DRIVEN_KINDS, "a new job kind: drive it in this test"
    ran = {job.kind for job in Job.select(Job.kind).where(Job.status == "succeeded")}
    assert ran >= DRIVEN_KINDS, DRIVEN_KINDS - ran
    assert kinds >= DRIVEN_KINDS - OWNERLESS_KINDS, DRIVEN_KINDS - OWNERLESS_KINDS - kinds
    assert types >= EVENT_TYPES, EVENT_TYPES - types

    assert len(secrets) >= 10 and all(secrets)
    for channel, event, raw in events:
        for pattern in SECRET_PATTERNS:
            assert not pattern.search(raw), (channel, event["type"], raw)
        for secret in secrets:
            assert secret not in raw, (channel, event["type"], "carries a secret its owner fetched over REST")


def test_old_job_events_with_signed_links_leave_the_replay_streams_once(redis, settings, runtime):
    from tasks.maintenance import redact_signed_links_from_events

    bus = EventBus(redis, settings.redis_prefix)
    leaked = {
        "id": "j1",
        "kind": "exports.build_export",
        "status": "succeeded",
        "result": {
            "file": {"key": "exports/u/j1/hearth-export.zip"},
            "download_url": "http://hearth.test/v1/downloads/exports/u/j1/hearth-export.zip?expires=1&sig=abc",
            "expires_at": "2026-01-01T00:00:00+00:00",
        },
    }
    bus.publish("user:u1", "job.progress", {"id": "j1", "status": "running", "result": None}, also=("job:j1",))
    bus.publish("user:u1", "job.succeeded", leaked, also=("job:j1",))
    bus.publish("conversation:c1", "message.created", {"body": "see https://example.com/?sig=mine"})
    bus.publish("user:u1", "job.succeeded", {"id": "j2", "status": "succeeded", "result": {"file": {"key": "k"}}})

    assert redact_signed_links_from_events() == {"deleted": 2, "already_done": False}
    assert [e["type"] for e in bus.history("job:j1")] == ["job.progress"]
    assert [(e["type"], e["data"]["id"]) for e in bus.history("user:u1")] == [
        ("job.progress", "j1"),
        ("job.succeeded", "j2"),
    ]
    # What people wrote is theirs: only job events are redacted.
    assert len(bus.history("conversation:c1")) == 1
    bus.publish("user:u1", "job.succeeded", leaked)
    assert redact_signed_links_from_events() == {"deleted": 0, "already_done": True}
