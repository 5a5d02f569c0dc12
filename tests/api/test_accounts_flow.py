"""The account lifecycle over HTTP, as a frontend would drive it."""
from __future__ import annotations

from models.accounts import User


def test_register_verify_login_me_refresh_logout(client, jobs, outbox):
    resp = client.simulate_post("/v1/auth/register", json={
        "email": "Ada@Example.com", "password": "analytical engine 1843", "full_name": "Ada Lovelace",
        "role": "seller"})
    assert resp.status_code == 201, resp.text
    assert resp.json["email"] == "ada@example.com"
    assert resp.json["email_verified"] is False
    assert resp.json["role"] == "seller"

    assert outbox.messages() == []  # the worker sends it, not the request
    assert jobs.run_pending() == 1
    token = outbox.token_for("ada@example.com")

    resp = client.simulate_post("/v1/auth/verify-email", json={"token": token})
    assert resp.status_code == 204, resp.text
    again = client.simulate_post("/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 400  # single use
    assert User.get(User.email == "ada@example.com").email_verified_at is not None

    resp = client.simulate_post("/v1/auth/login", json={"email": "ada@example.com",
                                                        "password": "analytical engine 1843"})
    assert resp.status_code == 200, resp.text
    pair = resp.json
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    me = client.simulate_get("/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json["email_verified"] is True
    assert me.json["full_name"] == "Ada Lovelace"

    refreshed = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.json["refresh_token"] != pair["refresh_token"]

    # Replaying the consumed refresh token ends the whole session family.
    replay = client.simulate_post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status_code == 401
    newest = client.simulate_post("/v1/auth/refresh", json={"refresh_token": refreshed.json["refresh_token"]})
    assert newest.status_code == 401
    me = client.simulate_get("/v1/me", headers={"Authorization": f"Bearer {refreshed.json['access_token']}"})
    assert me.status_code == 401
