"""``/v1/jobs``: my jobs, one job (owner or admin, 404 for anyone else), cancel, the diagnostic job."""

from __future__ import annotations

import datetime
import time

import pytest

from models.base import utcnow
from models.jobs import Job
from services.events import EventBus
from tests.factories import make_user


def _job(owner, *, kind="jobs.selftest", status="queued", minutes_ago=0, **fields) -> Job:
    return Job.create(
        kind=kind,
        owner=owner.id,
        status=status,
        created_at=utcnow() - datetime.timedelta(minutes=minutes_ago),
        **fields,
    )


@pytest.fixture
def bus(redis, settings):
    return EventBus(redis, settings.redis_prefix)


def test_my_jobs_newest_first_filtered_and_paged(client, user, auth_headers):
    headers = auth_headers(user)
    mine = [
        _job(
            user,
            minutes_ago=10 - i,
            kind="exports.build_export" if i % 2 else "jobs.selftest",
            status="succeeded" if i < 3 else "queued",
        )
        for i in range(5)
    ]
    _job(make_user())  # someone else's

    resp = client.simulate_get("/v1/jobs", headers=headers)
    assert resp.status_code == 200, resp.text
    assert [j["id"] for j in resp.json["items"]] == [str(j.id) for j in reversed(mine)]

    page1 = client.simulate_get("/v1/jobs", headers=headers, params={"limit": 2}).json
    page2 = client.simulate_get("/v1/jobs", headers=headers, params={"limit": 2, "cursor": page1["next_cursor"]}).json
    page3 = client.simulate_get("/v1/jobs", headers=headers, params={"limit": 2, "cursor": page2["next_cursor"]}).json
    ids = [j["id"] for page in (page1, page2, page3) for j in page["items"]]
    assert ids == [str(j.id) for j in reversed(mine)] and page3["next_cursor"] is None

    exports = client.simulate_get("/v1/jobs", headers=headers, params={"kind": "exports.build_export"}).json
    assert {j["kind"] for j in exports["items"]} == {"exports.build_export"} and len(exports["items"]) == 2
    queued = client.simulate_get("/v1/jobs", headers=headers, params={"status": "queued"}).json
    assert [j["id"] for j in queued["items"]] == [str(mine[4].id), str(mine[3].id)]

    bad = client.simulate_get("/v1/jobs", headers=headers, params={"status": "exploded"})
    assert bad.status_code == 422
    forged = client.simulate_get("/v1/jobs", headers=headers, params={"cursor": "bm90IGEgY3Vyc29y"})
    assert forged.status_code == 422
    assert client.simulate_get("/v1/jobs").status_code == 401


def test_a_job_is_visible_to_its_owner_and_admins_and_404_for_anyone_else(client, user, admin, auth_headers):
    job = _job(user, progress_pct=40, progress_message="halfway")
    path = f"/v1/jobs/{job.id}"
    mine = client.simulate_get(path, headers=auth_headers(user))
    assert mine.status_code == 200
    assert mine.json["progress"] == {"percent": 40, "message": "halfway"}
    assert (mine.json["status"], mine.json["cancel_requested"]) == ("queued", False)
    assert client.simulate_get(path, headers=auth_headers(admin)).status_code == 200
    stranger = client.simulate_get(path, headers=auth_headers(make_user()))
    assert stranger.status_code == 404
    missing = client.simulate_get("/v1/jobs/00000000-0000-0000-0000-000000000000", headers=auth_headers(user))
    assert missing.status_code == 404 and missing.json == {**missing.json, "detail": stranger.json["detail"]}
    assert client.simulate_get("/v1/jobs/not-a-uuid", headers=auth_headers(user)).status_code == 404


def test_cancelling_a_queued_job_ends_it_at_once(client, jobs, user, auth_headers, bus, runtime):
    job = _job(user, input={"steps": 1, "step_ms": 0})
    resp = client.simulate_post(f"/v1/jobs/{job.id}/cancel", headers=auth_headers(user))
    assert resp.status_code == 200, resp.text
    assert (resp.json["status"], resp.json["cancel_requested"]) == ("cancelled", True)
    assert [e["type"] for e in bus.history(f"user:{user.id}")] == ["job.cancelled"]

    jobs.submitted.append(str(job.id))  # its message is still delivered
    jobs.run_pending()
    row = Job.get_by_id(job.id)
    assert (row.status, row.started_at) == ("cancelled", None)

    again = client.simulate_post(f"/v1/jobs/{job.id}/cancel", headers=auth_headers(user))
    assert again.status_code == 409 and again.json["type"].endswith("/job-finished")


def test_cancelling_a_running_job_asks_it_to_stop(client, user, admin, auth_headers, bus):
    job = _job(user, status="running", attempts=1, lease_expires_at=utcnow() + datetime.timedelta(minutes=1))
    assert client.simulate_post(f"/v1/jobs/{job.id}/cancel", headers=auth_headers(make_user())).status_code == 404
    resp = client.simulate_post(f"/v1/jobs/{job.id}/cancel", headers=auth_headers(user))
    assert resp.status_code == 202, resp.text
    assert resp.headers["Location"] == f"/v1/jobs/{job.id}"
    assert (resp.json["status"], resp.json["cancel_requested"]) == ("running", True)
    # Asking twice (or an admin asking too) changes nothing more.
    assert client.simulate_post(f"/v1/jobs/{job.id}/cancel", headers=auth_headers(admin)).status_code == 202
    assert [e["type"] for e in bus.history(f"job:{job.id}")] == ["job.cancel_requested"]


def test_the_diagnostic_job_is_for_admins_and_runs_end_to_end(client, jobs, user, admin, auth_headers, bus):
    denied = client.simulate_post("/v1/admin/jobs/selftest", headers=auth_headers(user), json={})
    assert denied.status_code == 403

    resp = client.simulate_post(
        "/v1/admin/jobs/selftest",
        headers=auth_headers(admin),
        json={"steps": 3, "step_ms": 0, "owner_id": str(user.id)},
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json["id"]
    assert resp.headers["Location"] == f"/v1/jobs/{job_id}"
    assert jobs.submitted == [job_id]
    jobs.run_pending()
    done = client.simulate_get(f"/v1/jobs/{job_id}", headers=auth_headers(user)).json
    assert (done["status"], done["progress"]["percent"], done["result"]["steps"]) == ("succeeded", 100, 3)
    assert [e["type"] for e in bus.history(f"user:{user.id}")] == [
        "job.queued",
        "job.started",
        "job.progress",
        "job.progress",
        "job.progress",
        "job.succeeded",
    ]

    for body, field in [
        ({"steps": 0}, "body.steps"),
        ({"owner_id": "nobody"}, "body.owner_id"),
        ({"owner_id": "00000000-0000-0000-0000-000000000000"}, "body.owner_id"),
    ]:
        bad = client.simulate_post("/v1/admin/jobs/selftest", headers=auth_headers(admin), json=body)
        assert bad.status_code == 422 and field in [e["field"] for e in bad.json["errors"]], bad.json


def test_the_request_succeeds_when_the_broker_is_down(user, auth_headers, settings, redis, runtime):
    """The job is committed and stays queued; the sweep enqueues it once the broker is back."""
    from celery import Celery
    from falcon import testing

    import celeryconfig
    from api.app import build_services, create_app
    from services.jobqueue import CeleryJobQueue

    dead = Celery("dead-broker", broker="redis://127.0.0.1:1/0")  # nothing listens on port 1
    dead.config_from_object(celeryconfig)
    dead.conf.broker_url = "redis://127.0.0.1:1/0"
    services = build_services(settings, redis=redis, jobs=CeleryJobQueue(dead))
    client = testing.TestClient(create_app(settings, services=services, init_db=False))
    started = time.monotonic()
    resp = client.simulate_post("/v1/me/export", headers=auth_headers(user))
    assert resp.status_code == 202, resp.text
    assert time.monotonic() - started < 2  # no waiting on broker reconnects
    row = Job.get_by_id(resp.json["id"])
    assert (row.status, row.enqueued_at) == ("queued", None)
