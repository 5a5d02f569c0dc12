"""No secret reaches a log line: the account and upload flows at DEBUG, web and worker, grepped for each one."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from tests.services.backends import png
from tests.services.uploads_api import backend, fetch, settings  # noqa: F401 - fixtures: clamd and each storage backend

PASSWORD_AT_SIGNUP = "lantern harbour 1907"
PASSWORD_AFTER_RESET = "copper kettle whistle 22"


def test_register_to_signed_download_logs_no_token_password_link_or_key(client, jobs, outbox, settings, json_lines):
    email = "wren.logs@example.com"
    secrets: dict[str, str] = {"password at signup": PASSWORD_AT_SIGNUP, "new password": PASSWORD_AFTER_RESET}

    signup = {"email": email, "password": PASSWORD_AT_SIGNUP, "full_name": "Wren Logs", "role": "seller"}
    assert client.simulate_post("/v1/auth/register", json=signup).status_code == 202
    assert jobs.run_pending() == 1
    secrets["email verification token"] = outbox.token_for(email)
    verified = client.simulate_post("/v1/auth/verify-email", json={"token": secrets["email verification token"]})
    assert verified.status_code == 204

    pair = client.simulate_post("/v1/auth/login", json={"email": email, "password": PASSWORD_AT_SIGNUP}).json
    secrets["access token"], secrets["refresh token"] = pair["access_token"], pair["refresh_token"]
    refreshed = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json
    secrets["refreshed access token"] = refreshed["access_token"]
    secrets["refreshed refresh token"] = refreshed["refresh_token"]
    # A wrong password and a replayed refresh token are logged as failures; what was sent is not.
    client.simulate_post("/v1/auth/login", json={"email": email, "password": "not " + PASSWORD_AT_SIGNUP})
    client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    assert client.simulate_post("/v1/auth/password/forgot", json={"email": email}).status_code == 202
    assert jobs.run_pending() == 1
    secrets["password reset token"] = outbox.token_for(email)
    reset = {"token": secrets["password reset token"], "password": PASSWORD_AFTER_RESET}
    assert client.simulate_post("/v1/auth/password/reset", json=reset).status_code == 204

    login = client.simulate_post("/v1/auth/login", json={"email": email, "password": PASSWORD_AFTER_RESET})
    secrets["access token after reset"] = login.json["access_token"]
    headers = {"Authorization": f"Bearer {login.json['access_token']}"}
    photo = png()
    sent = client.simulate_post(
        "/v1/uploads",
        params={"purpose": "listing_photo", "filename": "porch.png"},
        body=photo,
        headers={**headers, "Content-Type": "image/png"},
    )
    assert sent.status_code == 202, sent.text
    assert jobs.run_pending() >= 1  # the scan, and the notices the reset sent (password changed, ...)
    link = client.simulate_get(f"/v1/uploads/{sent.json['id']}/download", headers=headers)
    assert link.status_code == 302, link.text
    status, content, _ = fetch(client, link.headers["Location"])
    assert (status, content) == (200, photo)
    query = dict(parse_qsl(urlsplit(link.headers["Location"]).query))
    secrets["signed link's signature"] = query.get("sig") or query["X-Amz-Signature"]
    secrets["SECRET_KEY"] = settings.secret_key

    lines = json_lines()
    # The scan covers what both sides logged: the API's requests and the worker's jobs, libraries included.
    loggers = {line["logger"] for line in lines}
    assert {"hearth.access", "peewee"} <= loggers, loggers
    assert any(line.get("job_kind") == "uploads.scan_upload" for line in lines)
    text = [json.dumps(line) for line in lines]
    for what, secret in secrets.items():
        assert len(secret) >= 8, what
        for line in text:
            assert secret not in line, (what, line[:400])
