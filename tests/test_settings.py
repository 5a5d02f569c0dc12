"""Settings: parsed from the environment, validated at start, unsafe production refused."""

from __future__ import annotations

import pathlib
import types

import pytest

from services.tokens import generate_private_pem
from settings import DEVELOPMENT_STRIPE_WEBHOOK_SECRET, Settings, SettingsError, parse_rate

SAFE_PRODUCTION = {
    "HEARTH_ENV": "production",
    "DATABASE_URL": "postgresql://hearth:pw@db.internal:5432/hearth",
    "REDIS_URL": "rediss://cache.internal:6380/0",
    "SECRET_KEY": "q8Zk2v9T4mW7xR1pL6nB3cJ5hG0sF8yD2aE4uQ7iO9",
    "JWT_PRIVATE_KEYS": generate_private_pem(),
    "MAIL_BACKEND": "sendgrid",
    "SENDGRID_API_KEY": "SG.something",
    "FLOWER_PASSWORD": "a long flower password",
    "PUBLIC_URL": "https://api.hearth.example",
    "STORAGE_URL": "s3://hearth-uploads?region=eu-west-1",
    "CLAMD_URL": "tcp://clamav.internal:3310",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
    "SMS_BACKEND": "twilio",
    "TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
    "TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
    "TWILIO_FROM": "+15550001111",
    "PAYMENTS_PROVIDER": "stripe",
    "STRIPE_API_KEY": "sk_live_0123456789abcdef",
    "STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef0123456789abcdef",
}


def _problems(environ: dict, **overrides) -> list[str]:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(environ, **overrides)
    return info.value.problems


def test_safe_production_settings_are_accepted():
    settings = Settings.from_env(SAFE_PRODUCTION)
    assert settings.production and not settings.debug
    assert settings.mail_backend == "sendgrid"


def test_production_with_nothing_configured_lists_every_problem():
    problems = _problems({"HEARTH_ENV": "production"})
    text = "\n".join(problems)
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "JWT_PRIVATE_KEYS",
        "MAIL_BACKEND",
        "FLOWER_PASSWORD",
        "PUBLIC_URL",
    ):
        assert name in text, name
    assert len(problems) >= 7


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"HEARTH_DEBUG": "true"}, "HEARTH_DEBUG"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"SECRET_KEY": "dev-" + "x" * 40}, "SECRET_KEY"),
        ({"MAIL_BACKEND": "outbox"}, "MAIL_BACKEND"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"REDIS_URL": ""}, "REDIS_URL"),
        ({"JWT_PRIVATE_KEYS": ""}, "JWT_PRIVATE_KEYS"),
        ({"FLOWER_PASSWORD": "hearth-dev"}, "FLOWER_PASSWORD"),
        ({"PUBLIC_URL": "http://api.hearth.example"}, "PUBLIC_URL"),
        ({"CORS_ORIGINS": "https://a.example,*"}, "CORS_ORIGINS"),
        ({"SMS_BACKEND": "outbox"}, "SMS_BACKEND"),
        ({"TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN"),
        ({"SENDGRID_WEBHOOK_PUBLIC_KEY": ""}, "SENDGRID_WEBHOOK_PUBLIC_KEY"),
        ({"FRONTEND_URL": "http://app.hearth.example"}, "FRONTEND_URL"),
        ({"PAYMENTS_PROVIDER": "sandbox"}, "PAYMENTS_PROVIDER"),
        ({"STRIPE_API_KEY": ""}, "STRIPE_API_KEY"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_hearth_development"}, "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_API_URL": "http://127.0.0.1:8025"}, "STRIPE_API_URL"),
    ],
)
def test_each_unsafe_production_setting_is_refused(change, named):
    problems = _problems({**SAFE_PRODUCTION, **change})
    assert len(problems) == 1, problems
    assert named in problems[0]


def test_production_gets_no_development_defaults():
    environ = {k: v for k, v in SAFE_PRODUCTION.items() if k not in ("SECRET_KEY", "FLOWER_PASSWORD")}
    text = "\n".join(_problems(environ))
    assert "SECRET_KEY" in text and "FLOWER_PASSWORD" in text


def test_development_fills_in_safe_local_defaults():
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.secret_key and settings.flower_password
    assert settings.outbox_dir == settings.var_dir / "outbox"


def test_payments_default_to_the_sandbox_with_a_development_webhook_secret_outside_production():
    settings = Settings.from_env({})
    assert settings.payments_provider == "sandbox"
    assert settings.stripe_webhook_secret == DEVELOPMENT_STRIPE_WEBHOOK_SECRET
    assert (settings.stripe_api_url, settings.stripe_webhook_tolerance) == ("https://api.stripe.com", 300)
    # Production gets no such default: the provider must be chosen and Stripe's secret given.
    environ = {k: v for k, v in SAFE_PRODUCTION.items() if not k.startswith(("PAYMENTS_", "STRIPE_"))}
    text = "\n".join(_problems(environ))
    assert "PAYMENTS_PROVIDER=sandbox" in text
    stripe = Settings.from_env(SAFE_PRODUCTION)
    assert stripe.payments_provider == "stripe" and stripe.stripe_webhook_secret.startswith("whsec_0123")


def test_secrets_are_not_in_the_repr():
    text = repr(Settings.from_env(SAFE_PRODUCTION))
    for name in ("SECRET_KEY", "JWT_PRIVATE_KEYS", "SENDGRID_API_KEY", "FLOWER_PASSWORD", "STRIPE_API_KEY"):
        assert SAFE_PRODUCTION[name] not in text


def test_values_are_parsed_and_bad_ones_all_named():
    settings = Settings.from_env(
        {
            "HEARTH_DEBUG": "yes",
            "MAX_BODY_BYTES": "2048",
            "HEARTH_VAR_DIR": "/tmp/h",
            "CORS_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert settings.debug is True and settings.max_body_bytes == 2048
    assert settings.var_dir == pathlib.Path("/tmp/h")
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    problems = _problems({"HEARTH_DEBUG": "perhaps", "MAX_BODY_BYTES": "lots"})
    assert len(problems) == 2
    assert any("HEARTH_DEBUG" in p for p in problems) and any("MAX_BODY_BYTES" in p for p in problems)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"HEARTH_ENV": "staging"}, "HEARTH_ENV"),
        ({"DATABASE_URL": "mysql://db/hearth"}, "DATABASE_URL"),
        ({"REDIS_URL": "memcached://x"}, "REDIS_URL"),
        ({"MAIL_BACKEND": "pigeon"}, "MAIL_BACKEND"),
        ({"MAIL_BACKEND": "sendgrid"}, "SENDGRID_API_KEY"),
        ({"ACCESS_TOKEN_TTL": "10"}, "ACCESS_TOKEN_TTL"),
        ({"ACCESS_TOKEN_TTL": "3600", "REFRESH_TOKEN_TTL": "600"}, "REFRESH_TOKEN_TTL"),
        ({"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES"),
        ({"IDEMPOTENCY_KEY_TTL": "30"}, "IDEMPOTENCY_KEY_TTL"),
        ({"RATE_LIMIT_AUTH": "lots"}, "RATE_LIMIT_AUTH"),
        ({"FRONTEND_URL": "app.hearth.example"}, "FRONTEND_URL"),
        ({"LOGIN_ACCOUNT_LOCK_ADDRESSES": "1"}, "LOGIN_ACCOUNT_LOCK_ADDRESSES"),
        ({"ACCOUNT_UNLOCK_TTL": "5"}, "ACCOUNT_UNLOCK_TTL"),
        ({"PAYMENTS_PROVIDER": "paypal"}, "PAYMENTS_PROVIDER"),
        ({"PAYMENTS_PROVIDER": "stripe"}, "STRIPE_API_KEY"),
        ({"STRIPE_API_URL": "api.stripe.com"}, "STRIPE_API_URL"),
        ({"STRIPE_WEBHOOK_TOLERANCE": "5"}, "STRIPE_WEBHOOK_TOLERANCE"),
        ({"SEARCH_REBUILD_SESSIONS": "0"}, "SEARCH_REBUILD_SESSIONS"),
        ({"SEARCH_REBUILD_MAINTENANCE_WORK_MEM": "1GB'; DROP TABLE users; --"}, "SEARCH_REBUILD_MAINTENANCE_WORK_MEM"),
        ({"SEARCH_REBUILD_MAINTENANCE_WORK_MEM": "lots"}, "SEARCH_REBUILD_MAINTENANCE_WORK_MEM"),
    ],
)
def test_malformed_settings_are_refused_in_every_environment(environ, named):
    assert any(named in p for p in _problems(environ))


def test_keyword_overrides_win_over_the_environment():
    settings = Settings.from_env({"RATE_LIMIT_AUTH": "20/minute"}, rate_limit_auth="3/second")
    assert parse_rate(settings.rate_limit_auth) == (3, 1)


@pytest.mark.parametrize(
    ("text", "expected"), [("20/minute", (20, 60)), ("5/seconds", (5, 1)), ("100/day", (100, 86400))]
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


def test_development_makes_a_private_random_secret_key_once_and_keeps_it(tmp_path):
    import os
    import stat
    import subprocess
    import sys

    from settings import ROOT

    first = Settings.from_env({"HEARTH_VAR_DIR": str(tmp_path)})
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.secret_key) >= 32 and first.secret_key == key_file.read_text().strip()
    assert first.secret_key != "dev-only-secret-key-not-for-production-use"  # the old, public one
    # Another process on the same var/ (a worker, a `hearth` command, a restart) reads the same key.
    code = "from settings import Settings; print(Settings.from_env().secret_key)"
    other = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HEARTH_ENV": "development", "HEARTH_VAR_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)},
    )
    assert other.stdout.strip() == first.secret_key
    # Another checkout gets another key; a configured one is used as it is.
    assert Settings.from_env({"HEARTH_VAR_DIR": str(tmp_path / "other")}).secret_key != first.secret_key
    assert Settings.from_env({"HEARTH_VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 40}).secret_key == "x" * 40


@pytest.mark.parametrize("name", ["WEB_BIND", "RELAY_BIND", "FLOWER_BIND"])
@pytest.mark.parametrize("address", ["0.0.0.0:8000", "[::]:8000", "192.0.2.10:8000", "hearth.example:8000"])
def test_outside_production_nothing_listens_beyond_loopback(tmp_path, name, address):
    problems = _problems({"HEARTH_VAR_DIR": str(tmp_path), name: address})
    assert problems == [
        f"{name}={address} listens beyond this machine; outside HEARTH_ENV=production Hearth "
        "listens on loopback only (127.0.0.1, ::1, localhost)"
    ]


def test_loopback_binds_are_fine_anywhere_and_production_may_listen_wide(tmp_path):
    for address in ("127.0.0.1:8000", "127.0.0.2:9000", "[::1]:8000", "localhost:8000"):
        Settings.from_env({"HEARTH_VAR_DIR": str(tmp_path), "WEB_BIND": address})
    assert Settings.from_env({**SAFE_PRODUCTION, "WEB_BIND": "0.0.0.0:8000"}).web_bind == "0.0.0.0:8000"


def test_cors_origins_default_to_local_dev_servers_in_development_only(tmp_path):
    development = Settings.from_env({"HEARTH_VAR_DIR": str(tmp_path)})
    for origin in (
        "http://localhost:3000",
        "http://127.0.0.1:3000",
        "http://localhost:5173",
        "http://127.0.0.1:5173",
        "http://localhost:8080",
        "http://localhost:4200",
    ):
        assert origin in development.cors_origins
    assert all(o.startswith(("http://localhost:", "http://127.0.0.1:")) for o in development.cors_origins)
    # An explicit list replaces the defaults; tests and production start from none.
    assert Settings.from_env({"HEARTH_VAR_DIR": str(tmp_path), "CORS_ORIGINS": "https://app.example"}).cors_origins == (
        "https://app.example",
    )
    assert Settings.from_env({"HEARTH_ENV": "test", "HEARTH_VAR_DIR": str(tmp_path)}).cors_origins == ()
    assert Settings.from_env(SAFE_PRODUCTION).cors_origins == ()


def test_emailed_links_open_hearths_own_pages_unless_a_frontend_url_is_set():
    assert Settings.from_env({"PUBLIC_URL": "http://127.0.0.1:8000/"}).pages_url == "http://127.0.0.1:8000"
    assert Settings.from_env({"FRONTEND_URL": "https://app.example.com/"}).pages_url == "https://app.example.com"


def test_the_earnest_money_deposit_window_is_between_one_and_thirty_business_days(tmp_path):
    base = {"HEARTH_ENV": "test", "HEARTH_VAR_DIR": str(tmp_path)}
    assert Settings.from_env(base).escrow_deposit_business_days == 3
    assert Settings.from_env({**base, "ESCROW_DEPOSIT_BUSINESS_DAYS": "30"}).escrow_deposit_business_days == 30
    for bad in ("0", "31", "-2"):
        problems = _problems({**base, "ESCROW_DEPOSIT_BUSINESS_DAYS": bad})
        assert problems == ["ESCROW_DEPOSIT_BUSINESS_DAYS must be between 1 and 30"], bad
    assert any("ESCROW_DEPOSIT_BUSINESS_DAYS" in p for p in _problems({**base, "ESCROW_DEPOSIT_BUSINESS_DAYS": "soon"}))


def test_prepared_statements_are_on_unless_a_transaction_pooler_needs_them_off(monkeypatch):
    from models import db as database_module
    from models.db import init_database, make_database

    assert Settings.from_env({}).database_prepared_statements is True
    off = Settings.from_env({"DATABASE_PREPARED_STATEMENTS": "false", "DATABASE_URL": "postgresql://h/hearth"})
    assert off.database_prepared_statements is False
    with pytest.raises(SettingsError, match="DATABASE_PREPARED_STATEMENTS"):
        Settings.from_env({"DATABASE_PREPARED_STATEMENTS": "sometimes"})
    assert make_database("postgresql://h/hearth").prepared_statements is True
    bound: list = []
    # The tests' own database stays bound: the proxy init_database would rebind is replaced for this test.
    monkeypatch.setattr(database_module, "db", types.SimpleNamespace(initialize=bound.append))
    assert init_database(off).prepared_statements is False and bound[0].prepared_statements is False
