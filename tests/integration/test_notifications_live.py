"""Notification fan-out on real worker processes: a worker killed mid-send sends nothing twice."""

from __future__ import annotations

import pytest

from models.base import utcnow
from models.db import db
from models.jobs import Job
from models.notifications import NotificationDelivery, NotificationPreference, notify
from tests.factories import make_user
from tests.integration.processes import start_worker, wait_for
from tests.providers import providers  # noqa: F401
from tests.tasks.live import LiveBroker, wait_job

pytestmark = pytest.mark.integration
PHONE = "+15557654321"


def _deliveries(notification_id) -> dict:
    return {
        row.channel: row
        for row in NotificationDelivery.select().where(NotificationDelivery.notification == notification_id)
    }


def test_a_worker_killed_during_the_sms_request_sends_each_channel_once(live_env, live_db, logs, procs, providers):
    env = {**live_env, **providers.env(), "JOB_LEASE_SECONDS": "2"}
    user = make_user()
    db.execute_sql("UPDATE users SET phone = %s, phone_verified_at = now() WHERE id = %s", (PHONE, user.id))
    NotificationPreference.create(user=user.id, types={"message.received": {"email": True, "sms": True}})
    with db.atomic():
        job = notify(
            user.id,
            "message.received",
            title="New message from Ada",
            body="Still available?",
            data={"conversation_id": "c0ffee00-0000-4000-8000-000000000001"},
        )
    notification_id = job.input["notification_id"]
    # Twilio takes the request and does not answer: the worker dies while it waits.
    providers.program("sms", {"status": 201, "delay_seconds": 30})

    worker = start_worker(env, logs, queues="notify,maintenance", name="doomed")
    procs.append(worker)
    broker = LiveBroker(env)
    assert broker.submit(job)
    providers.wait_for("sms", 1, timeout=30)
    worker.kill9()
    in_flight = _deliveries(notification_id)
    assert (in_flight["email"].status, in_flight["sms"].status) == ("sent", "sending")
    assert in_flight["sms"].claimed_by == job.id

    procs.append(start_worker(env, logs, queues="notify,maintenance", name="rescuer"))
    wait_for(lambda: Job.get_by_id(job.id).lease_expires_at < utcnow(), timeout=5, what="the lease to expire")
    broker.sweep()
    done = wait_job(job.id, lambda j: j.status == "succeeded", procs=procs, what="the rescued fan-out to finish")
    broker.close()

    assert done.attempts == 2
    assert [e.status for e in providers.emails()] == [202]
    assert [t.to for t in providers.texts()] == [PHONE]
    settled = _deliveries(notification_id)
    assert (settled["email"].status, settled["email"].attempts) == ("sent", 1)
    assert (settled["sms"].status, settled["sms"].attempts) == ("unknown", 1)
    assert done.result == {"in_app": True, "deliveries": {"email": "sent", "sms": "unknown"}}
