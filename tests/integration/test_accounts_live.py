"""The account flow against real processes: gunicorn serving the API, a Celery worker sending mail."""

from __future__ import annotations

import email
import pathlib

import httpx
import pytest

from tests.integration.processes import start_gunicorn, start_worker, wait_for

PASSWORD = "a live and long passphrase"


@pytest.fixture
def stack(live_env, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        web, base = start_gunicorn(live_env, logs)
        procs.append(web)
        procs.append(start_worker(live_env, logs, queues="notify"))
        yield base, pathlib.Path(live_env["HEARTH_VAR_DIR"]) / "outbox", procs
    finally:
        for proc in reversed(procs):
            proc.stop()


def _token_in(path: pathlib.Path) -> str:
    message = email.message_from_bytes(path.read_bytes())
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            for line in part.get_payload(decode=True).decode().splitlines():
                if line.startswith("token="):
                    return line.split("=", 1)[1].strip()
    raise AssertionError(f"no token in {path.name}")


def test_register_verify_login_refresh_and_replay_over_real_http(stack):
    base, outbox, procs = stack
    with httpx.Client(base_url=base, timeout=10) as http:
        resp = http.post(
            "/v1/auth/register", json={"email": "Live@Example.com", "password": PASSWORD, "full_name": "Live Person"}
        )
        assert resp.status_code == 202, resp.text
        assert resp.json()["status"] == "accepted"

        try:
            [mail] = wait_for(lambda: list(outbox.glob("*.eml")), timeout=15, what="the verification email")
        except AssertionError:
            raise AssertionError("\n".join(p.output() for p in procs)) from None
        assert email.message_from_bytes(mail.read_bytes())["To"] == "live@example.com"
        token = _token_in(mail)

        assert http.post("/v1/auth/verify-email", json={"token": token}).status_code == 204
        assert http.post("/v1/auth/verify-email", json={"token": token}).status_code == 400

        login = http.post("/v1/auth/login", json={"email": "live@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        first = login.json()
        me = http.get("/v1/me", headers={"Authorization": f"Bearer {first['access_token']}"})
        assert me.status_code == 200 and me.json()["email_verified"] is True

        refreshed = http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        newest = refreshed.json()
        assert http.get("/v1/me", headers={"Authorization": f"Bearer {newest['access_token']}"}).status_code == 200

        replay = http.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert replay.status_code == 401
        assert replay.headers["content-type"].startswith("application/problem+json")
        # The whole family is gone: the newest refresh token and its access token too.
        assert http.post("/v1/auth/refresh", json={"refresh_token": newest["refresh_token"]}).status_code == 401
        assert http.get("/v1/me", headers={"Authorization": f"Bearer {newest['access_token']}"}).status_code == 401
    assert all(proc.alive() for proc in procs)
