"""Request ids: accepted or made, echoed on every answer, in every log line of the request and of its jobs."""

from __future__ import annotations

import logging

import falcon
import pytest

from models.jobs import Job
from services.jobqueue import REQUEST_ID_HEADER, CeleryJobQueue, producer_app


def test_a_clients_request_id_is_kept_and_echoed(client):
    resp = client.simulate_get("/healthz", headers={"X-Request-ID": "checkout-7f3a.2_b"})
    assert resp.headers["X-Request-ID"] == "checkout-7f3a.2_b"


@pytest.mark.parametrize("bad", ["a" * 65, "has space", "semi;colon", "ünï", ""])
def test_an_unfit_request_id_is_replaced(client, bad):
    resp = client.simulate_get("/healthz", headers={"X-Request-ID": bad})
    made = resp.headers["X-Request-ID"]
    assert made != bad and len(made) == 32 and made.isalnum()


def test_errors_carry_the_same_id_in_header_and_body(client, settings, services):
    from api.app import create_app

    missing = client.simulate_get("/v1/jobs/not-a-uuid", headers={"X-Request-ID": "err-404"})
    assert missing.headers["X-Request-ID"] == "err-404"
    assert missing.status_code == 404 and missing.json["request_id"] == "err-404"

    def boom(req, resp):
        raise RuntimeError("internal detail")

    app = create_app(settings, services=services, init_db=False)
    app.add_sink(boom, "/boom")
    failed = falcon.testing.TestClient(app).simulate_get("/boom", headers={"X-Request-ID": "err-500"})
    assert failed.status_code == 500
    assert failed.headers["X-Request-ID"] == "err-500" and failed.json["request_id"] == "err-500"


def test_one_id_finds_the_request_and_its_job_in_web_and_worker_lines(client, jobs, auth_headers, admin, json_lines):
    headers = dict(auth_headers(admin), **{"X-Request-ID": "support-ticket-4242"})
    resp = client.simulate_post("/v1/admin/jobs/selftest", headers=headers, json={})
    assert resp.status_code == 202, resp.text
    job = Job.get_by_id(resp.json["id"])
    assert job.request_id == "support-ticket-4242"
    assert jobs.run_pending() == 1

    lines = json_lines()
    web = [line for line in lines if line.get("logger") == "hearth.access" and line.get("status") == 202]
    assert web and web[-1]["request_id"] == "support-ticket-4242"
    assert web[-1]["route"] == "/v1/admin/jobs/selftest"
    # The worker's lines for the job: bound with the job and the request it came from.
    worker = [line for line in lines if line.get("job_id") == str(job.id)]
    assert worker, lines
    # The claim itself is the one line before the row is read (in production the task's header has
    # told the id already, see the last test): from there on every line carries it.
    assert "UPDATE jobs SET status = 'running'" in worker[0]["event"]
    assert len(worker) > 3 and all(line.get("request_id") == "support-ticket-4242" for line in worker[1:])
    for line in lines:
        assert {"time", "level", "process", "logger", "event"} <= set(line)
        assert line["time"].endswith("+00:00")
    # The owner (here an admin) sees the id on the job.
    seen = client.simulate_get(f"/v1/jobs/{job.id}", headers=auth_headers(admin))
    assert seen.json["request_id"] == "support-ticket-4242"


def test_lines_after_the_request_no_longer_carry_its_id(client, json_lines):
    client.simulate_get("/healthz", headers={"X-Request-ID": "gone-after"})
    logging.getLogger("hearth.test").info("later")
    later = [line for line in json_lines() if line["event"] == "later"]
    assert later and "request_id" not in later[0]


def test_the_request_id_travels_in_the_task_headers(settings):
    app = producer_app(settings)
    app.conf["broker_url"] = "memory://"
    job = Job(kind="jobs.selftest", request_id="hdr-123")
    assert CeleryJobQueue(app).submit(job)
    with app.connection_for_read() as conn:
        message = conn.SimpleQueue("default", no_ack=True).get(timeout=5)
    assert message.headers[REQUEST_ID_HEADER] == "hdr-123"
    assert message.headers["task"] == "tasks.jobs.selftest"


def test_a_job_without_a_request_does_not_inherit_the_id_of_the_job_before_it(
    client, jobs, auth_headers, admin, json_lines
):
    from tasks.app import app as celery_app

    headers = dict(auth_headers(admin), **{"X-Request-ID": "first-job"})
    assert client.simulate_post("/v1/admin/jobs/selftest", headers=headers, json={}).status_code == 202
    assert jobs.run_pending() == 1
    system = Job.create(kind="jobs.selftest", queue="maintenance", input={"steps": 1, "step_ms": 0})
    assert system.request_id is None
    celery_app.tasks["tasks.jobs.selftest"](str(system.id))
    assert Job.get_by_id(system.id).status == "succeeded"
    lines = [line for line in json_lines() if line.get("job_id") == str(system.id)]
    assert lines and not any("request_id" in line for line in lines)
