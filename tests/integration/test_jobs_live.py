"""Jobs against real processes: gunicorn, Celery workers (killed with SIGKILL), a broker that goes away."""

from __future__ import annotations

import io
import json
import pathlib
import zipfile
from urllib.parse import urlsplit

import httpx
import pytest

from models.jobs import Job, JobEffect
from tests.factories import PASSWORD, make_user
from tests.integration.processes import start_gunicorn, start_worker, wait_for
from tests.tasks.live import BrokerServer, LiveBroker, live_events, login, wait_job

pytestmark = pytest.mark.integration


def _types(env, channel) -> list[str]:
    return [event["type"] for event in live_events(env).history(channel)]


def test_export_runs_on_a_worker_with_progress_events_and_downloads(live_env, live_db, logs, procs):
    user = make_user(full_name="Live Exporter")
    web, base = start_gunicorn(live_env, logs)
    procs.append(web)
    procs.append(start_worker(live_env, logs, queues="exports"))
    headers = login(base, user.email, PASSWORD)

    resp = httpx.post(f"{base}/v1/me/export", headers=headers, timeout=10)
    assert resp.status_code == 202, resp.text
    location = resp.headers["Location"]
    job_id = resp.json()["id"]
    assert location == f"/v1/jobs/{job_id}"

    wait_job(job_id, lambda j: j.status == "succeeded", procs=procs, what="the export to succeed")
    view = httpx.get(f"{base}{location}", headers=headers, timeout=10).json()
    assert (view["status"], view["progress"]["percent"], view["attempts"]) == ("succeeded", 100, 1)

    types = _types(live_env, f"user:{user.id}")
    assert types[:2] == ["job.queued", "job.started"] and types[-1] == "job.succeeded"
    assert types.count("job.progress") >= 4 and types.count("job.succeeded") == 1
    percents = [
        e["data"]["progress"]["percent"]
        for e in live_events(live_env).history(f"job:{job_id}")
        if e["type"] == "job.progress"
    ]
    assert percents == sorted(percents) and percents[-1] >= 80  # "Writing the archive"

    link = urlsplit(view["result"]["download_url"])
    archive = httpx.get(f"{base}{link.path}?{link.query}", timeout=10)
    assert archive.status_code == 200, archive.text
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert json.loads(zf.read("profile.json"))["full_name"] == "Live Exporter"


def test_a_worker_killed_mid_job_leaves_it_to_finish_exactly_once(live_env, live_db, logs, procs):
    env = {**live_env, "JOB_LEASE_SECONDS": "2"}
    user = make_user()
    worker = start_worker(env, logs, queues="default,maintenance", name="doomed")
    procs.append(worker)
    broker = LiveBroker(env)
    job = Job.create(kind="jobs.selftest", queue="default", owner=user.id, input={"steps": 8, "step_ms": 250})
    assert broker.submit(job)

    # The probe is written once, halfway (step 4 of 8): kill the worker just after it.
    wait_job(job.id, lambda j: j.progress_pct >= 50, procs=procs, what="the job to pass halfway")
    worker.kill9()
    killed = Job.get_by_id(job.id)
    assert (killed.status, killed.attempts) == ("running", 1) and killed.progress_pct < 100

    procs.append(start_worker(env, logs, queues="default,maintenance", name="rescuer"))
    wait_for(lambda: Job.get_by_id(job.id).lease_expires_at < _now(), timeout=5, what="the lease to expire")
    broker.sweep()
    done = wait_job(job.id, lambda j: j.status == "succeeded", procs=procs, what="the rescued job to finish")
    broker.close()

    assert done.attempts == 2
    assert done.result["probe"]["attempt"] == 1  # the effect of the first run, not repeated
    probe = pathlib.Path(env["HEARTH_VAR_DIR"]) / "storage" / done.result["probe"]["key"]
    assert json.loads(probe.read_text())["attempt"] == 1
    assert JobEffect.select().where(JobEffect.job == job.id).count() == 1
    types = _types(env, f"job:{job.id}")
    assert types.count("job.succeeded") == 1 and types.count("job.requeued") == 1
    assert types.count("job.started") == 2


def test_a_job_accepted_while_the_broker_was_down_runs_once_it_is_back(live_env, live_db, logs, procs, tmp_path):
    broker_server = BrokerServer(tmp_path).start()
    env = {**live_env, "BROKER_URL": broker_server.url, "JOB_REQUEUE_AFTER": "1"}
    user = make_user()
    try:
        web, base = start_gunicorn(env, logs)
        procs.append(web)
        headers = login(base, user.email, PASSWORD)
        broker_server.stop()

        resp = httpx.post(f"{base}/v1/me/export", headers=headers, timeout=10)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        assert Job.get_by_id(job_id).status == "queued"

        broker_server.start()  # the broker is back, empty: the message was never sent
        procs.append(start_worker(env, logs, queues="exports,maintenance"))
        wait_for(
            lambda: (_now() - Job.get_by_id(job_id).created_at).total_seconds() > 1,
            timeout=5,
            what="the job to be older than JOB_REQUEUE_AFTER",
        )
        broker = LiveBroker(env)
        broker.sweep()
        broker.close()
        done = wait_job(job_id, lambda j: j.status == "succeeded", procs=procs, what="the swept job to finish")
        assert done.attempts == 1 and done.enqueued_at is not None
    finally:
        broker_server.stop()


def test_cancel_before_and_during_a_run(live_env, live_db, logs, procs):
    admin = make_user(role="admin")
    web, base = start_gunicorn(live_env, logs)
    procs.append(web)
    headers = login(base, admin.email, PASSWORD, env=live_env)

    # Before: queued (no worker yet), cancelled, then its message is delivered to a worker.
    early = httpx.post(
        f"{base}/v1/admin/jobs/selftest", headers=headers, json={"steps": 2, "step_ms": 10}, timeout=10
    ).json()
    cancel = httpx.post(f"{base}/v1/jobs/{early['id']}/cancel", headers=headers, timeout=10)
    assert (cancel.status_code, cancel.json()["status"]) == (200, "cancelled")
    procs.append(start_worker(live_env, logs, queues="default"))

    # During: running, asked to stop, stops at its next progress point.
    late = httpx.post(
        f"{base}/v1/admin/jobs/selftest", headers=headers, json={"steps": 50, "step_ms": 100}, timeout=10
    ).json()
    wait_job(
        late["id"], lambda j: j.status == "running" and j.progress_pct > 0, procs=procs, what="the second job to run"
    )
    cancel = httpx.post(f"{base}/v1/jobs/{late['id']}/cancel", headers=headers, timeout=10)
    assert cancel.status_code == 202 and cancel.json()["cancel_requested"] is True
    stopped = wait_job(late["id"], lambda j: j.status == "cancelled", procs=procs, what="the job to stop")
    assert stopped.progress_pct < 100 and stopped.result is None

    # The early job's message was consumed (the worker took the later one after it) and started nothing.
    first = Job.get_by_id(early["id"])
    assert (first.status, first.started_at, first.attempts) == ("cancelled", None, 0)
    assert _types(live_env, f"job:{late['id']}")[-2:] == ["job.cancel_requested", "job.cancelled"]
    assert "job.started" not in _types(live_env, f"job:{early['id']}")


def _now():
    from models.base import utcnow

    return utcnow()


def test_one_request_id_finds_the_request_and_its_job_in_web_and_worker_logs(live_env, live_db, logs, procs):
    user = make_user()
    web, base = start_gunicorn(live_env, logs)
    procs.append(web)
    worker = start_worker(live_env, logs, queues="exports")
    procs.append(worker)
    headers = dict(login(base, user.email, PASSWORD), **{"X-Request-ID": "ticket-5150.export"})

    resp = httpx.post(f"{base}/v1/me/export", headers=headers, timeout=10)
    assert resp.status_code == 202 and resp.headers["X-Request-ID"] == "ticket-5150.export"
    job_id = resp.json()["id"]
    wait_job(job_id, lambda j: j.status == "succeeded", procs=procs, what="the export to succeed")
    assert Job.get_by_id(job_id).request_id == "ticket-5150.export"
    # A second delivery of the message finds nothing to claim: its line has the id from the task header.
    broker = LiveBroker(live_env)
    assert broker.submit(Job.get_by_id(job_id))
    broker.close()

    def lines(proc) -> list[dict]:
        return [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]

    wait_for(lambda: any(line["event"] == "nothing to claim" for line in lines(worker)), what="the repeat delivery")
    web_lines = [line for line in lines(web) if line.get("request_id") == "ticket-5150.export"]
    assert any(line["event"] == "request" and line["status"] == 202 for line in web_lines)
    assert {line["process"] for line in web_lines} == {"web"}
    job_lines = [line for line in lines(worker) if line.get("job_id") == job_id]
    assert job_lines and all(line["request_id"] == "ticket-5150.export" for line in job_lines)
    assert {line["process"] for line in job_lines} == {"worker"}
    assert any(line["event"] == "nothing to claim" for line in job_lines)
