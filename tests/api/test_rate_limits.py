"""Rate limits: per-client buckets in Redis, shared by every API process, announced in headers."""

from __future__ import annotations

import os
import time

import pytest
from falcon import testing

from api.app import build_services, create_app
from api.ratelimit import HOT_CLIENT_NAME
from models.conversations import Conversation, Message
from tests.api.conftest import assert_problem
from tests.api.test_conversations import make_listing
from tests.conftest import make_settings
from tests.factories import PASSWORD, make_user

AUTH_LIMIT = 3
# A frozen clock 10 s into a minute: the fixed window cannot roll over mid-test.
NOW = (int(time.time()) // 60) * 60 + 10


@pytest.fixture
def settings(database, tmp_path, redis_prefix):
    return make_settings(
        database,
        tmp_path,
        redis_prefix=redis_prefix,
        rate_limit_auth=f"{AUTH_LIMIT}/minute",
        rate_limit_default="5/minute",
    )


@pytest.fixture
def services(settings, redis, jobs, runtime):
    return build_services(settings, redis=redis, jobs=jobs, clock=lambda: NOW)


def _instance(settings, redis, jobs):
    """Another API process: its own app and collaborators over the same Redis prefix."""
    services = build_services(settings, redis=redis, jobs=jobs, clock=lambda: NOW)
    return testing.TestClient(create_app(settings, services=services, init_db=False))


def _login(client, email="nobody@example.com", password="some password", ip="203.0.113.20"):
    return client.simulate_post("/v1/auth/login", json={"email": email, "password": password}, remote_addr=ip)


def test_the_auth_bucket_runs_out_with_429_and_headers(client):
    for remaining in range(AUTH_LIMIT - 1, -1, -1):
        resp = _login(client)
        assert resp.status_code == 401
        assert resp.headers["ratelimit-limit"] == str(AUTH_LIMIT)
        assert resp.headers["ratelimit-remaining"] == str(remaining)
        assert resp.headers["ratelimit-reset"] == "50"
    limited = _login(client)
    body = assert_problem(limited, 429)
    assert limited.headers["retry-after"] == "50"
    assert limited.headers["ratelimit-limit"] == str(AUTH_LIMIT)
    assert limited.headers["ratelimit-remaining"] == "0"
    assert limited.headers["ratelimit-reset"] == "50"
    assert body["retry_after"] == 50
    # Every auth endpoint draws on the same bucket.
    assert_problem(
        client.simulate_post("/v1/auth/password/forgot", json={"email": "a@example.com"}, remote_addr="203.0.113.20"),
        429,
    )
    # Other clients have their own.
    assert _login(client, ip="203.0.113.21").status_code == 401


def test_a_rate_limited_request_does_no_work(client, user):
    from models.jobs import Job

    for _ in range(AUTH_LIMIT):
        _login(client)
    before = Job.select().count()
    assert_problem(
        client.simulate_post("/v1/auth/password/forgot", json={"email": user.email}, remote_addr="203.0.113.20"), 429
    )
    assert Job.select().count() == before
    assert_problem(_login(client, user.email, PASSWORD), 429)


def test_two_app_instances_over_the_same_prefix_share_the_count(settings, redis, jobs):
    first, second = _instance(settings, redis, jobs), _instance(settings, redis, jobs)
    assert _login(first).headers["ratelimit-remaining"] == "2"
    assert _login(second).headers["ratelimit-remaining"] == "1"
    assert _login(first).headers["ratelimit-remaining"] == "0"
    assert_problem(_login(second), 429)


def test_signed_in_users_are_counted_per_user_in_the_default_bucket(client, user, login):
    headers = {"Authorization": f"Bearer {login(user)['access_token']}"}
    for remaining in (4, 3, 2, 1, 0):
        resp = client.simulate_get("/v1/me", headers=headers, remote_addr="198.51.100.1")
        assert resp.status_code == 200
        assert resp.headers["ratelimit-remaining"] == str(remaining)
    # A new address does not reset the user's count.
    assert_problem(client.simulate_get("/v1/me", headers=headers, remote_addr="198.51.100.2"), 429)


def test_health_and_jwks_are_not_limited(client):
    for _ in range(10):
        assert client.simulate_get("/healthz").status_code == 200
        assert client.simulate_get("/.well-known/jwks.json").status_code == 200


def test_a_spoofed_forwarded_for_header_does_not_escape_the_limit(client):
    for n in range(AUTH_LIMIT):
        resp = client.simulate_post(
            "/v1/auth/login",
            json={"email": "x@example.com", "password": "pw pw pw pw"},
            headers={"X-Forwarded-For": f"10.0.0.{n}"},
            remote_addr="203.0.113.30",
        )
        assert resp.status_code == 401
    assert_problem(
        client.simulate_post(
            "/v1/auth/login",
            json={"email": "x@example.com", "password": "pw pw pw"},
            headers={"X-Forwarded-For": "10.9.9.9"},
            remote_addr="203.0.113.30",
        ),
        429,
    )


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(settings, redis, jobs):
    import dataclasses

    proxied = dataclasses.replace(settings, trusted_proxies=1)
    client = _instance(proxied, redis, jobs)
    for _ in range(AUTH_LIMIT):
        client.simulate_post(
            "/v1/auth/login",
            json={"email": "x@example.com", "password": "pw pw pw pw"},
            headers={"X-Forwarded-For": "1.2.3.4, 10.0.0.1"},
            remote_addr="127.0.0.1",
        )
    # The proxy's own address is shared by every client; the forwarded one is what is limited.
    assert_problem(
        client.simulate_post(
            "/v1/auth/login",
            json={"email": "x@example.com", "password": "pw pw"},
            headers={"X-Forwarded-For": "10.0.0.1"},
            remote_addr="127.0.0.1",
        ),
        429,
    )
    resp = client.simulate_post(
        "/v1/auth/login",
        json={"email": "x@example.com", "password": "pw pw pw pw"},
        headers={"X-Forwarded-For": "10.0.0.2"},
        remote_addr="127.0.0.1",
    )
    assert resp.status_code == 401


def test_counting_survives_a_flushed_script_cache_and_a_dropped_connection(client, services, redis, user, auth_headers):
    headers = auth_headers(user)
    assert client.simulate_get("/v1/me", headers=headers).headers["RateLimit-Remaining"] == "4"
    redis.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    assert client.simulate_get("/v1/me", headers=headers).headers["RateLimit-Remaining"] == "3"
    ours = [c["id"] for c in redis.client_list() if c["name"] == f"{HOT_CLIENT_NAME}-{os.getpid()}"]
    assert ours
    for client_id in ours:  # the server drops the request path's connection
        redis.client_kill_filter(_id=client_id)
    first = client.simulate_get("/v1/me", headers=headers)
    assert first.status_code in (200, 503)  # the broken connection is noticed on this request
    after = client.simulate_get("/v1/me", headers=headers)
    assert after.status_code == 200
    assert int(after.headers["RateLimit-Remaining"]) < 3


def test_messaging_listings_has_its_own_hourly_bucket_and_a_refused_one_writes_nothing(
    database, tmp_path, redis_prefix, redis, jobs, runtime
):
    settings = make_settings(database, tmp_path, redis_prefix=redis_prefix, rate_limit_contact="2/hour")
    ten_past_the_hour = (int(time.time()) // 3600) * 3600 + 600  # the hourly window cannot roll over mid-test
    services = build_services(settings, redis=redis, jobs=jobs, clock=lambda: ten_past_the_hour)
    client = testing.TestClient(create_app(settings, services=services, init_db=False))
    buyer, seller = make_user(), make_user(role="seller")
    resp = client.simulate_post("/v1/auth/login", json={"email": buyer.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {resp.json['access_token']}"}
    homes = [make_listing(seller, address=f"{n} Elm Street") for n in range(3)]
    for home in homes[:2]:
        resp = client.simulate_post(
            "/v1/conversations", headers=headers, json={"property_id": str(home.id), "body": "Is it still available?"}
        )
        assert resp.status_code == 201 and resp.headers["ratelimit-limit"] == "2"
    limited = client.simulate_post(
        "/v1/conversations", headers=headers, json={"property_id": str(homes[2].id), "body": "And this one?"}
    )
    assert_problem(limited, 429)
    assert limited.headers["retry-after"] == "3000"  # the rest of the hour
    assert Conversation.select().count() == 2 and Message.select().count() == 2
    # Replies are not first contact: they still go through.
    conversation = Conversation.get(Conversation.property == homes[0].id)
    reply = client.simulate_post(
        f"/v1/conversations/{conversation.id}/messages", headers=headers, json={"body": "Saturday works"}
    )
    assert reply.status_code == 201
