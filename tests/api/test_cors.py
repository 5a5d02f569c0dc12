"""CORS: only origins on the allow-list get browser access."""

from __future__ import annotations

from falcon import testing

from api.app import build_services, create_app
from tests.conftest import make_settings


def _client(database, tmp_path, redis_prefix, jobs):
    settings = make_settings(database, tmp_path, redis_prefix=redis_prefix, cors_origins=("https://app.hearth.test",))
    services = build_services(settings, jobs=jobs)
    return testing.TestClient(create_app(settings, services=services, init_db=False))


def test_an_allowed_origin_gets_cors_headers_and_preflight(database, tmp_path, redis_prefix, jobs):
    client = _client(database, tmp_path, redis_prefix, jobs)
    resp = client.simulate_get("/healthz", headers={"Origin": "https://app.hearth.test"})
    assert resp.headers.get("Access-Control-Allow-Origin") == "https://app.hearth.test"
    assert "X-Request-ID" in resp.headers.get("Access-Control-Expose-Headers", "")
    preflight = client.simulate_options(
        "/v1/auth/login",
        headers={
            "Origin": "https://app.hearth.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert preflight.status_code == 200
    assert "POST" in preflight.headers.get("Access-Control-Allow-Methods", "")


def test_another_origin_gets_no_cors_headers(database, tmp_path, redis_prefix, jobs):
    client = _client(database, tmp_path, redis_prefix, jobs)
    resp = client.simulate_get("/healthz", headers={"Origin": "https://evil.example"})
    assert resp.status_code == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_development_answers_a_vite_dev_server_preflight(database, tmp_path, redis_prefix, jobs):
    from settings import Settings
    from tests.conftest import REDIS_URL

    settings = Settings.from_env(
        {
            "HEARTH_ENV": "development",
            "DATABASE_URL": database,
            "REDIS_URL": REDIS_URL,
            "HEARTH_VAR_DIR": str(tmp_path),
            "REDIS_PREFIX": redis_prefix,
        }
    )
    client = testing.TestClient(create_app(settings, services=build_services(settings, jobs=jobs), init_db=False))
    preflight = client.simulate_options(
        "/v1/me",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.headers.get("Access-Control-Allow-Origin") == "http://localhost:5173"
    assert "authorization" in preflight.headers.get("Access-Control-Allow-Headers", "").lower()
