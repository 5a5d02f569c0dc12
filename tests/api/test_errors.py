"""Every error leaves as problem+json; nothing internal leaks; outages are 503."""

from __future__ import annotations

import dataclasses
import logging
import time

import pytest
import redis as redis_lib
from falcon import testing
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.app import build_services, create_app
from api.operation import operation
from models.db import db
from tests.api.conftest import RecordingJobQueue, assert_problem
from tests.conftest import make_settings


def test_unknown_path_is_404_problem(client):
    body = assert_problem(client.simulate_get("/v1/no-such-thing"), 404)
    assert body["request_id"]


def test_unsupported_method_is_405_problem(client):
    resp = client.simulate_delete("/v1/auth/login")
    assert_problem(resp, 405)
    assert "POST" in resp.headers["allow"]


def test_a_sane_incoming_request_id_is_kept_and_echoed(client):
    resp = client.simulate_get("/v1/no-such-thing", headers={"X-Request-ID": "edge-1234abcd"})
    assert resp.headers["x-request-id"] == "edge-1234abcd"
    assert resp.json["request_id"] == "edge-1234abcd"
    hostile = client.simulate_get("/v1/no-such-thing", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert hostile.json["request_id"] != "<script>alert(1)</script>"


class Exploding:
    @operation("Fails", auth="none", rate=None)
    def on_get(self, req, resp):
        raise RuntimeError("password=hunter2 at /srv/hearth/secret.py line 42")

    def on_post(self, req, resp):  # no operation: the handler covers plain responders too
        raise KeyError("internal-key")


def test_an_unexpected_exception_is_a_500_with_a_request_id_and_nothing_internal(settings, services, caplog):
    app = create_app(settings, services=services, init_db=False)
    app.add_route("/boom", Exploding())
    client = testing.TestClient(app)
    with caplog.at_level(logging.ERROR, logger="hearth.api"):
        for method in ("GET", "POST"):
            resp = client.simulate_request(method, "/boom")
            body = assert_problem(resp, 500)
            assert body["request_id"] == resp.headers["x-request-id"]
            assert "hunter2" not in resp.text and "secret.py" not in resp.text
            assert "RuntimeError" not in resp.text and "internal-key" not in resp.text
    # The details go to the log, under the same request id.
    assert any(getattr(r, "request_id", None) == body["request_id"] for r in caplog.records)


@pytest.fixture
def unreachable_database(database, tmp_path, redis_prefix):
    """Settings naming a database nobody listens on; the proxy is restored afterwards."""
    previous = db.obj
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nowhere", tmp_path, redis_prefix=redis_prefix)
    yield settings
    db.initialize(previous)


def test_database_unreachable_is_503(unreachable_database, redis):
    settings = unreachable_database
    services = build_services(settings, redis=redis, jobs=RecordingJobQueue())
    client = testing.TestClient(create_app(settings, services=services))  # binds the unreachable database
    resp = client.simulate_post("/v1/auth/login", json={"email": "a@example.com", "password": "some password"})
    body = assert_problem(resp, 503)
    assert resp.headers["retry-after"]
    assert "127.0.0.1" not in resp.text and "nowhere" not in resp.text
    assert body["request_id"]
    ready = client.simulate_get("/readyz")
    assert_problem(ready, 503)
    assert ready.json["checks"]["redis"] == "ok"
    assert ready.json["checks"]["database"].startswith("unreachable")
    assert client.simulate_get("/healthz").status_code == 200  # the process itself is alive


def test_redis_unreachable_is_503(settings, jobs, runtime, user):
    dead = redis_lib.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )  # fail at once instead of backing off
    services = build_services(settings, redis=dead, jobs=jobs)
    client = testing.TestClient(create_app(settings, services=services, init_db=False))
    resp = client.simulate_post("/v1/auth/login", json={"email": user.email, "password": "whatever it is"})
    assert_problem(resp, 503)
    ready = client.simulate_get("/readyz")
    assert_problem(ready, 503)
    assert ready.json["checks"]["database"] == "ok"


def test_an_unreachable_redis_fails_fast(database, tmp_path, redis_prefix, jobs):
    # The app's own client: a request must not hold a worker through a long retry loop.
    settings = make_settings(database, tmp_path, redis_prefix=redis_prefix, redis_url="redis://127.0.0.1:1/0")
    client = testing.TestClient(create_app(settings, services=build_services(settings, jobs=jobs), init_db=False))
    started = time.monotonic()
    assert_problem(
        client.simulate_post("/v1/auth/login", json={"email": "a@example.com", "password": "pw pw pw pw"}), 503
    )
    assert time.monotonic() - started < 1.0


def _client_with_scanner(settings, services, clamd_url: str):
    settings = dataclasses.replace(settings, clamd_url=clamd_url)
    return testing.TestClient(
        create_app(settings, services=dataclasses.replace(services, settings=settings), init_db=False)
    )


def test_readyz_when_all_is_well(settings, services):
    from tests.services.backends import clamd_url

    resp = _client_with_scanner(settings, services, clamd_url()).simulate_get("/readyz")
    assert resp.status_code == 200
    assert resp.json == {"status": "ready", "checks": {"database": "ok", "redis": "ok", "scanner": "ok"}}


def test_readyz_says_degraded_when_the_scanner_does_not_answer(settings, services, tmp_path):
    started = time.monotonic()
    resp = _client_with_scanner(settings, services, f"unix://{tmp_path}/no-clamd.sock").simulate_get("/readyz")
    assert resp.status_code == 200
    assert resp.json["status"] == "degraded"
    assert resp.json["checks"] == {"database": "ok", "redis": "ok", "scanner": "unreachable: no PONG from clamd"}
    assert time.monotonic() - started < 3


def test_every_response_carries_the_security_headers(client):
    for resp in (client.simulate_get("/healthz"), client.simulate_get("/v1/nothing-here")):
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
