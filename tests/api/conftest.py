"""The API under test: the real app and real Redis, jobs run in-process on demand."""
from __future__ import annotations

import email
import pathlib

import pytest
from falcon import testing

from api.app import build_services, create_app
from services.jobqueue import task_name
from tasks.app import app as celery_app
from tasks.runtime import init_runtime
from tests.factories import PASSWORD, make_user

celery_app.loader.import_default_modules()  # register every task module listed in tasks.app


class RecordingJobQueue:
    """Collects submitted jobs; ``run_pending()`` runs their tasks in this process and transaction."""

    def __init__(self):
        self.submitted = []

    def submit(self, job, *, countdown=None) -> bool:
        self.submitted.append(str(job.id))
        return True

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
def jobs():
    return RecordingJobQueue()


@pytest.fixture
def runtime(settings, redis):
    return init_runtime(settings, redis=redis, init_db=False)


@pytest.fixture
def services(settings, redis, jobs, runtime):
    return build_services(settings, redis=redis, jobs=jobs)


@pytest.fixture
def client(settings, services):
    return testing.TestClient(create_app(settings, services=services, init_db=False))


class Outbox:
    def __init__(self, directory: pathlib.Path):
        self.directory = directory

    def messages(self) -> list[email.message.Message]:
        if not self.directory.exists():
            return []
        return [email.message_from_bytes(p.read_bytes()) for p in sorted(self.directory.glob("*.eml"))]

    def token_for(self, address: str) -> str:
        """The ``token=`` value in the newest message to ``address``."""
        for message in reversed(self.messages()):
            if message["To"] == address:
                body = message.get_body(("plain",)) if hasattr(message, "get_body") else message
                text = (body.get_payload(decode=True) or b"").decode() if not message.is_multipart() else \
                    message.get_payload(0).get_payload(decode=True).decode()
                for line in text.splitlines():
                    if line.startswith("token="):
                        return line.split("=", 1)[1].strip()
        raise AssertionError(f"no message with a token to {address}")


@pytest.fixture
def outbox(settings):
    return Outbox(settings.outbox_dir)


@pytest.fixture
def login(client):
    """Log a user in; returns the token pair body."""
    def do(user, password=PASSWORD):
        resp = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": password})
        assert resp.status_code == 200, resp.text
        return resp.json
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
