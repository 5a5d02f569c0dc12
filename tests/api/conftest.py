"""The API under test: the real app and real Redis, jobs run in-process on demand."""

from __future__ import annotations

import io
import json
import logging

import pytest
from falcon import testing

from api.app import build_services, create_app
from models.mfa import has_verified_factor
from services.jobqueue import task_name
from services.logging import LogHandler
from tasks.app import app as celery_app
from tasks.runtime import init_runtime
from tests.factories import PASSWORD, enroll_totp, fresh_totp_code, make_user
from tests.outbox import Outbox

celery_app.loader.import_default_modules()  # register every task module listed in tasks.app


class RecordingJobQueue:
    """Collects submitted jobs; ``run_pending()`` runs their tasks in this process and transaction."""

    def __init__(self):
        self.submitted = []

    def submit(self, job, *, countdown=None) -> bool:
        self.submitted.append(str(job.id))
        return True

    def backlog(self) -> set[str]:
        """No broker queue has messages waiting."""
        return set()

    def run_pending(self) -> int:
        ran = 0
        while self.submitted:
            job_id = self.submitted.pop(0)
            from models.jobs import Job

            job = Job.get_by_id(job_id)
            celery_app.tasks[task_name(job.kind)](job_id)
            ran += 1
        return ran


@pytest.fixture
def json_lines():
    """Every log line of this process at DEBUG, as the JSON format writes them, while the test runs."""
    stream = io.StringIO()
    handler = LogHandler(stream, "json")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    # The libraries' loggers too (peewee logs each query with its parameters at DEBUG).
    levels = {name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict)}
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield read
    root.removeHandler(handler)
    root.setLevel(level)
    for name, previous in levels.items():
        logging.getLogger(name).setLevel(previous)


@pytest.fixture
def jobs():
    return RecordingJobQueue()


@pytest.fixture
def runtime(settings, redis, jobs):
    """The worker's runtime for tasks run here: what they submit goes to the same recording queue as the API's."""
    return init_runtime(settings, redis=redis, init_db=False, jobs=jobs)


@pytest.fixture
def services(settings, redis, jobs, runtime):
    return build_services(settings, redis=redis, jobs=jobs)


@pytest.fixture
def client(settings, services):
    return testing.TestClient(create_app(settings, services=services, init_db=False))


@pytest.fixture
def outbox(settings):
    return Outbox(settings.outbox_dir)


def log_in(client, settings, user, password=PASSWORD) -> dict:
    """Log ``user`` in through the API; returns the token pair body.

    A user whose role needs two-factor login (admins) is enrolled first if need be, and the login
    goes through its challenge with a current code, so the tokens are aal2 as in production.
    """
    if user.role in settings.mfa_required_roles and not has_verified_factor(user.id):
        enroll_totp(user, settings.secret_key)
    resp = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": password})
    assert resp.status_code == 200, resp.text
    if resp.json.get("mfa_required"):
        code = fresh_totp_code(user, settings.secret_key)
        resp = client.simulate_post(
            "/v1/auth/mfa/verify", json={"challenge_id": resp.json["challenge_id"], "code": code}
        )
        assert resp.status_code == 200, resp.text
    return resp.json


@pytest.fixture
def login(client, settings):
    """Log a user in (``log_in``); returns the token pair body."""

    def do(user, password=PASSWORD):
        return log_in(client, settings, user, password)

    return do


@pytest.fixture
def auth_headers(login):
    def make(user, password=PASSWORD):
        return {"Authorization": f"Bearer {login(user, password)['access_token']}"}

    return make


@pytest.fixture
def user():
    return make_user()


@pytest.fixture
def admin():
    return make_user(role="admin")


PROBLEM_JSON = "application/problem+json"


def assert_problem(resp, status: int, *, field: str | None = None) -> dict:
    """Assert ``resp`` is an RFC 9457 problem with ``status`` (naming ``field`` if given)."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM_JSON), resp.headers
    body = resp.json
    assert body["status"] == status
    assert body["type"].startswith("https://hearth.dev/problems/")
    assert body["title"]
    if field is not None:
        fields = [error["field"] for error in body.get("errors") or []]
        assert field in fields, body
    return body


def bearer(pair: dict) -> dict:
    """Authorization header for a token pair returned by login or refresh."""
    return {"Authorization": f"Bearer {pair['access_token']}"}
