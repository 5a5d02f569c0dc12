"""Concurrent requests for work that runs one at a time (an export): every one is answered with the job."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from models.db import db
from models.jobs import ACTIVE, Job
from tests.factories import PASSWORD, make_user
from tests.integration.processes import start_gunicorn
from tests.tasks.live import login

pytestmark = pytest.mark.integration

REQUESTS = 240


def _finish_exports_as_they_come(owner_id, stop: threading.Event) -> None:
    """A worker as fast as can be: each active export of ``owner_id`` succeeds as soon as it is seen.

    That is what frees the dedupe key between one request's refused insert and its look-up.
    """
    with db.connection_context():
        while not stop.is_set():
            Job.update(status="succeeded", finished_at=Job.created_at).where(
                (Job.owner == owner_id) & Job.status.in_(ACTIVE)
            ).execute()


def test_concurrent_exports_each_get_a_job_while_jobs_finish(live_env, live_db, logs, procs):
    user = make_user()
    web, base = start_gunicorn(live_env, logs, workers=2, config=True)
    procs.append(web)
    headers = login(base, user.email, PASSWORD)

    stop = threading.Event()
    finisher = threading.Thread(target=_finish_exports_as_they_come, args=(user.id, stop))
    finisher.start()
    try:
        with (
            httpx.Client(base_url=base, headers=headers, timeout=30, limits=httpx.Limits(max_connections=16)) as http,
            ThreadPoolExecutor(16) as pool,
        ):
            answers = list(pool.map(lambda _: http.post("/v1/me/export"), range(REQUESTS)))
    finally:
        stop.set()
        finisher.join()

    statuses = sorted({resp.status_code for resp in answers})
    assert statuses == [202], [resp.text for resp in answers if resp.status_code != 202][:3]
    job_ids = {resp.json()["id"] for resp in answers}
    assert all(resp.headers["Location"] == f"/v1/jobs/{resp.json()['id']}" for resp in answers)
    assert Job.select().where(Job.owner == user.id).count() == len(job_ids) > 1
