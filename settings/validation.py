"""The rules a configuration must satisfy beyond each value's type (``Settings.validate`` lists them all)."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from settings import Settings

ENVIRONMENTS = ("development", "test", "production")


class SettingsError(Exception):
    """Raised at start when the environment does not describe a safe configuration."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid settings:\n  - " + "\n  - ".join(problems))


# Secrets shorter than this are refused in production.
MIN_SECRET_LENGTH = 32


def is_loopback_bind(bind: str) -> bool:
    """True when ``host:port`` (or gunicorn's ``unix:PATH``) can only be reached from this machine."""
    if bind.startswith("unix:"):
        return True
    host = bind.rpartition(":")[0].strip("[]") if ":" in bind else bind
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "", 0.0.0.0-like names, or a host name that may resolve anywhere


STORAGE_URL_OPTIONS = ("endpoint", "public_endpoint", "region", "addressing")


def storage_url_problems(url: str) -> list[str]:
    """``STORAGE_URL``: empty, ``file:///path`` or ``s3://bucket?endpoint=&public_endpoint=&region=&addressing=``."""
    if not url:
        return []
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return []
    if parsed.scheme != "s3":
        return ["STORAGE_URL must be file:///path or s3://bucket?endpoint=...&region=..."]
    problems = []
    if not parsed.hostname or parsed.path not in ("", "/"):
        problems.append("STORAGE_URL: s3:// needs a bucket name and nothing after it (s3://bucket?region=...)")
    options = dict(pair.partition("=")[::2] for pair in filter(None, parsed.query.split("&")))
    unknown = sorted(set(options) - set(STORAGE_URL_OPTIONS))
    if unknown:
        problems.append(f"STORAGE_URL: unknown option(s) {', '.join(unknown)}; known: {', '.join(STORAGE_URL_OPTIONS)}")
    for name in ("endpoint", "public_endpoint"):
        if options.get(name) and urlparse(unquote(options[name])).scheme not in ("http", "https"):
            problems.append(f"STORAGE_URL: {name} must be an http(s):// URL")
    if options.get("addressing", "path") not in ("path", "virtual"):
        problems.append("STORAGE_URL: addressing must be path or virtual")
    return problems


BROKER_SCHEMES = ("redis", "rediss", "unix", "amqp", "amqps")


def job_and_relay_problems(settings: Settings) -> list[str]:
    """Jobs, storage, scanning, SMS, uploads and the relay."""
    problems: list[str] = []
    if settings.broker_url and urlparse(settings.broker_url).scheme not in BROKER_SCHEMES:
        problems.append("BROKER_URL must be a redis://, rediss://, amqp:// or amqps:// URL")
    problems.extend(storage_url_problems(settings.storage_url))
    if settings.clamd_url and urlparse(settings.clamd_url).scheme not in ("unix", "tcp"):
        problems.append("CLAMD_URL must be unix:///path/to/clamd.sock or tcp://host:port")
    if settings.sms_backend not in ("outbox", "twilio"):
        problems.append("SMS_BACKEND must be outbox or twilio")
    if settings.sms_backend == "twilio" and not (
        settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from
    ):
        problems.append("TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM are required with SMS_BACKEND=twilio")
    if not 0 <= settings.message_notification_delay <= 3600:
        problems.append("MESSAGE_NOTIFICATION_DELAY must be between 0 and 3600 seconds")
    if not 60 <= settings.phone_code_ttl <= 3600:
        problems.append("PHONE_CODE_TTL must be between 60 seconds and an hour")
    if not 1 <= settings.clamd_timeout <= 600:
        problems.append("CLAMD_TIMEOUT must be between 1 and 600 seconds")
    for name in (
        "upload_direct_max_bytes",
        "upload_photo_max_bytes",
        "upload_document_max_bytes",
        "upload_avatar_max_bytes",
    ):
        if getattr(settings, name) < 1024:
            problems.append(f"{name.upper()} must be at least 1024")
    if not 60 <= settings.upload_intent_ttl <= 24 * 3600:
        problems.append("UPLOAD_INTENT_TTL must be between 60 seconds and a day")
    if not 10 <= settings.upload_url_ttl <= 3600:
        problems.append("UPLOAD_URL_TTL must be between 10 seconds and an hour")
    if not 2 <= settings.job_lease_seconds <= 3600:
        problems.append("JOB_LEASE_SECONDS must be between 2 and 3600")
    if not 3 <= settings.beat_lock_ttl <= 3600:
        problems.append("BEAT_LOCK_TTL must be between 3 and 3600 seconds")
    if settings.job_requeue_after < 1:
        problems.append("JOB_REQUEUE_AFTER must be at least 1 second")
    if not 30 <= settings.export_url_ttl <= 24 * 3600:
        problems.append("EXPORT_URL_TTL must be between 30 seconds and a day")
    if settings.export_retention_hours < 1:
        problems.append("EXPORT_RETENTION_HOURS must be at least 1")
    if settings.relay_heartbeat_interval < 1 or settings.relay_idle_timeout <= settings.relay_heartbeat_interval:
        problems.append("RELAY_IDLE_TIMEOUT must be longer than RELAY_HEARTBEAT_INTERVAL (>= 1)")
    if settings.relay_auth_timeout < 1:
        problems.append("RELAY_AUTH_TIMEOUT must be at least 1 second")
    if not 4 <= settings.relay_send_queue <= 100_000:
        problems.append("RELAY_SEND_QUEUE must be between 4 and 100000")
    if settings.relay_max_channels < 1:
        problems.append("RELAY_MAX_CHANNELS must be at least 1")
    if not 1 <= settings.relay_unauthenticated_per_address <= settings.relay_unauthenticated_max:
        problems.append("RELAY_UNAUTHENTICATED_PER_ADDRESS must be between 1 and RELAY_UNAUTHENTICATED_MAX")
    return problems


def payments_problems(settings: Settings) -> list[str]:
    """The payments provider and Stripe's settings (production's own rules are in ``production_problems``)."""
    problems: list[str] = []
    if settings.payments_provider not in ("sandbox", "stripe"):
        problems.append("PAYMENTS_PROVIDER must be sandbox or stripe")
    if settings.payments_provider == "stripe" and not (settings.stripe_api_key and settings.stripe_webhook_secret):
        problems.append("STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET are required with PAYMENTS_PROVIDER=stripe")
    if urlparse(settings.stripe_api_url).scheme not in ("http", "https"):
        problems.append("STRIPE_API_URL must be an http(s):// URL")
    if not 10 <= settings.stripe_webhook_tolerance <= 3600:
        problems.append("STRIPE_WEBHOOK_TOLERANCE must be between 10 and 3600 seconds")
    return problems


def production_problems(settings: Settings) -> list[str]:
    """What production refuses: development backends, missing or weak secrets, debug, plain http."""
    problems: list[str] = []
    if settings.debug:
        problems.append("HEARTH_DEBUG must be off in production")
    if not settings.database_url:
        problems.append("DATABASE_URL is required in production (no embedded PostgreSQL)")
    if not settings.redis_url:
        problems.append("REDIS_URL is required in production (no embedded Redis)")
    if len(settings.secret_key) < MIN_SECRET_LENGTH or "dev" in settings.secret_key.lower():
        problems.append(f"SECRET_KEY must be a random value of at least {MIN_SECRET_LENGTH} characters")
    if not settings.jwt_private_keys:
        problems.append("JWT_PRIVATE_KEYS is required in production (no generated dev key)")
    if settings.supabase_compat_on and (
        len(settings.supabase_anon_key) < MIN_SECRET_LENGTH or "development" in settings.supabase_anon_key
    ):
        problems.append(
            f"SUPABASE_ANON_KEY must be a random value of at least {MIN_SECRET_LENGTH} characters "
            "when SUPABASE_COMPAT is on"
        )
    if settings.mail_backend == "outbox":
        problems.append("MAIL_BACKEND=outbox is a development backend; use sendgrid")
    if settings.sms_backend == "outbox":
        problems.append("SMS_BACKEND=outbox is a development backend; use twilio")
    if settings.mail_backend == "sendgrid" and not settings.sendgrid_webhook_public_key:
        problems.append(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is required in production (bounces and spam reports must stop email)"
        )
    if len(settings.flower_password) < 12:
        problems.append("FLOWER_PASSWORD must be at least 12 characters in production")
    if not settings.public_url.startswith("https://"):
        problems.append("PUBLIC_URL must be https:// in production")
    if settings.frontend_url and not settings.frontend_url.startswith("https://"):
        problems.append("FRONTEND_URL must be https:// in production")
    if "*" in settings.cors_origins:
        problems.append("CORS_ORIGINS may not be * in production")
    if urlparse(settings.storage_url).scheme != "s3":
        problems.append("STORAGE_URL must be an s3:// URL in production (local disk is for development)")
    if not settings.clamd_url:
        problems.append("CLAMD_URL is required in production (uploads are never served unscanned)")
    if settings.payments_provider == "sandbox":
        problems.append("PAYMENTS_PROVIDER=sandbox is a development backend; use stripe")
    secret = settings.stripe_webhook_secret  # its absence is payments_problems' to name
    if secret and (not secret.startswith("whsec_") or len(secret) < 20 or "development" in secret):
        problems.append("STRIPE_WEBHOOK_SECRET must be Stripe's whsec_... signing secret in production")
    if not settings.stripe_api_url.startswith("https://"):
        problems.append("STRIPE_API_URL must be https:// in production")
    return problems


def general_problems(settings: Settings) -> list[str]:
    """Malformed or out-of-range values, whatever the environment."""
    problems: list[str] = []
    if settings.env not in ENVIRONMENTS:
        problems.append(f"HEARTH_ENV must be one of {', '.join(ENVIRONMENTS)}")
    for name in ("database_url", "redis_url"):
        value = getattr(settings, name)
        if value and not urlparse(value).scheme:
            problems.append(f"{name.upper()} is not a URL")
    if settings.database_url and urlparse(settings.database_url).scheme not in (
        "postgres",
        "postgresql",
        "postgres+pool",
        "postgresql+pool",
    ):
        problems.append("DATABASE_URL must be a postgresql:// URL")
    if settings.redis_url and urlparse(settings.redis_url).scheme not in ("redis", "rediss", "unix"):
        problems.append("REDIS_URL must be a redis:// or rediss:// URL")
    if settings.mail_backend not in ("outbox", "sendgrid"):
        problems.append("MAIL_BACKEND must be outbox or sendgrid")
    if settings.mail_backend == "sendgrid" and not settings.sendgrid_api_key:
        problems.append("SENDGRID_API_KEY is required with MAIL_BACKEND=sendgrid")
    if not 60 <= settings.access_token_ttl <= 3600:
        problems.append("ACCESS_TOKEN_TTL must be between 60 and 3600 seconds")
    if settings.refresh_token_ttl < settings.access_token_ttl:
        problems.append("REFRESH_TOKEN_TTL must be longer than ACCESS_TOKEN_TTL")
    if settings.login_lockout_threshold < 1:
        problems.append("LOGIN_LOCKOUT_THRESHOLD must be at least 1")
    if settings.login_account_lock_addresses < 2:
        problems.append("LOGIN_ACCOUNT_LOCK_ADDRESSES must be at least 2 (one address is the per-address lock)")
    if not 300 <= settings.account_unlock_ttl <= 24 * 3600:
        problems.append("ACCOUNT_UNLOCK_TTL must be between 5 minutes and a day")
    if not set(settings.mfa_required_roles) <= {"buyer", "seller", "agent", "admin"}:
        problems.append("MFA_REQUIRED_ROLES must name roles among buyer, seller, agent, admin")
    if settings.frontend_url and urlparse(settings.frontend_url).scheme not in ("http", "https"):
        problems.append("FRONTEND_URL must be an http(s):// URL")
    if settings.supabase_compat not in ("", "on", "off"):
        problems.append("SUPABASE_COMPAT must be on or off")
    for url in settings.supabase_redirect_urls:
        if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
            problems.append(f"SUPABASE_REDIRECT_URLS: {url!r} is not an http(s):// URL")
    if settings.max_body_bytes < 1024:
        problems.append("MAX_BODY_BYTES must be at least 1024")
    if not 60 <= settings.idempotency_key_ttl <= 7 * 24 * 3600:
        problems.append("IDEMPOTENCY_KEY_TTL must be between 60 seconds and 7 days")
    if not 1 <= settings.escrow_deposit_business_days <= 30:
        problems.append("ESCROW_DEPOSIT_BUSINESS_DAYS must be between 1 and 30")
    if not 1 <= settings.search_rebuild_sessions <= 8:
        problems.append("SEARCH_REBUILD_SESSIONS must be between 1 and 8")
    if not re.fullmatch(r"[1-9][0-9]*(kB|MB|GB)", settings.search_rebuild_maintenance_work_mem):
        problems.append("SEARCH_REBUILD_MAINTENANCE_WORK_MEM must be a size such as 256MB or 1GB")
    if settings.log_format not in ("json", "console"):
        problems.append("LOG_FORMAT must be json or console")
    if settings.log_colors not in ("auto", "always", "never"):
        problems.append("LOG_COLORS must be auto, always or never")
    return problems
