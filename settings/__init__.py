"""Hearth settings: the one place that reads the environment.

``Settings.from_env()`` parses and validates every variable at start. In
production (``HEARTH_ENV=production``) it refuses development backends, missing
or weak secrets and debug mode, listing every problem at once.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any

from settings.backup_schedule import parse_backup_schedule
from settings.development import development_secret_key
from settings.parsing import RATE_UNITS, parse_field, parse_rate
from settings.validation import (
    ENVIRONMENTS,
    MIN_SECRET_LENGTH,
    STORAGE_URL_OPTIONS,
    SettingsError,
    general_problems,
    is_loopback_bind,
    job_and_relay_problems,
    payments_problems,
    production_problems,
)

# The repository (this package's parent).
ROOT = pathlib.Path(__file__).resolve().parent.parent
# Flower's basic-auth password outside production when FLOWER_PASSWORD is unset (public on purpose:
# development listens on loopback only, and production refuses a short FLOWER_PASSWORD).
DEVELOPMENT_FLOWER_PASSWORD = "hearth-dev"  # noqa: S105
# CORS_ORIGINS in development when it is empty: the usual local dev servers (Next/CRA 3000,
# Angular 4200, Vite 5173, Vue CLI/webpack 8080), by name and by address.
# STRIPE_WEBHOOK_SECRET outside production when it is unset: the sandbox provider signs its events
# with it (public on purpose; production refuses it and requires Stripe's own).
DEVELOPMENT_STRIPE_WEBHOOK_SECRET = "whsec_hearth_development"  # noqa: S105
# SUPABASE_ANON_KEY outside production when it is unset: the `apikey` the Supabase-compatible API
# expects from a development frontend (public on purpose; production requires its own).
DEVELOPMENT_SUPABASE_ANON_KEY = "hearth-development-anon-key"
DEVELOPMENT_CORS_ORIGINS = tuple(
    f"http://{host}:{port}" for port in (3000, 4200, 5173, 8080) for host in ("localhost", "127.0.0.1")
)


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    debug: bool = False
    var_dir: pathlib.Path = ROOT / "var"
    public_url: str = "http://127.0.0.1:8000"
    # Where emailed links open: {FRONTEND_URL}/verify-email, /reset-password, /unsubscribe and
    # /unlock-account, each ?token=. Empty: the small pages Hearth serves itself under PUBLIC_URL.
    frontend_url: str = ""

    database_url: str = ""
    database_max_connections: int = 20
    # Statements prepared on the server once per connection (``models/prepared.py``). Off behind a
    # pooler in transaction mode (PgBouncer's pool_mode=transaction), which moves a client between
    # server sessions: the statement is then sent whole each time.
    database_prepared_statements: bool = True
    redis_url: str = ""
    # Every Redis key Hearth writes starts with this, so several deployments
    # (or test runs) can share one server.
    redis_prefix: str = "hearth:"

    secret_key: str = field(default="", repr=False)
    jwt_private_keys: str = field(default="", repr=False)
    jwt_issuer: str = "hearth"
    jwt_audience: str = "hearth-api"
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600
    verify_email_ttl: int = 48 * 3600
    password_reset_ttl: int = 3600

    mail_backend: str = "outbox"
    mail_from: str = "Hearth <no-reply@hearth.local>"
    sendgrid_api_key: str = field(default="", repr=False)
    sendgrid_api_url: str = "https://api.sendgrid.com"

    cors_origins: tuple[str, ...] = ()
    # The Supabase-compatible auth API under /auth/v1 (docs/supabase-compat.md): on, off, or empty
    # for the default (on outside production, off in production until switched on).
    supabase_compat: str = ""
    # The `apikey` every /auth/v1 request must carry (the frontend's "anon key"); required in
    # production when the API is on.
    supabase_anon_key: str = field(default="", repr=False)
    # Where the emailed /auth/v1/verify links may redirect besides the CORS origins and FRONTEND_URL:
    # URL prefixes, comma-separated (GoTrue's URI allow list).
    supabase_redirect_urls: tuple[str, ...] = ()
    max_body_bytes: int = 1024 * 1024
    trusted_proxies: int = 0
    # Seconds the response to a request with an Idempotency-Key is kept and replayed to a retry
    # with the same key (docs/api.md).
    idempotency_key_ttl: int = 24 * 3600

    rate_limit_default: str = "300/minute"
    rate_limit_auth: str = "20/minute"
    # Messages to a listing's people through POST /v1/conversations, per user: first contact is where
    # spam starts. Replies in a conversation count against the default bucket.
    rate_limit_contact: str = "30/hour"
    # Failed logins for one account from one address before that address is locked out of it.
    login_lockout_threshold: int = 5
    login_ip_lockout_threshold: int = 30
    # Distinct addresses failing one account before it is locked from everywhere (its owner is
    # mailed an unlock link, valid ACCOUNT_UNLOCK_TTL seconds).
    login_account_lock_addresses: int = 10
    account_unlock_ttl: int = 3600
    # Roles whose powers need a session that proved a second factor (TOTP): docs/auth.md.
    mfa_required_roles: tuple[str, ...] = ("admin",)

    flower_user: str = "admin"
    flower_password: str = field(default="", repr=False)
    job_retention_days: int = 30

    web_bind: str = "127.0.0.1:8000"
    relay_bind: str = "127.0.0.1:8001"
    flower_bind: str = "127.0.0.1:5555"
    # The metrics process serves /metrics for every Hearth process of its host here (docs/operations.md).
    metrics_bind: str = "127.0.0.1:9464"
    # json: one object per line (production); console: readable, for people (`hearth run` sets it).
    log_format: str = "json"
    # Colours in the console format: auto (when the log stream is a terminal), always, never.
    log_colors: str = "auto"

    # --- Jobs, events, relay, storage (docs/jobs-and-events.md) ---
    # Celery broker; empty means REDIS_URL. A Redis of its own keeps cache eviction
    # policies away from queued work; amqp:// is RabbitMQ with quorum queues (docs/operations.md).
    broker_url: str = ""
    # A running job owns its row for this long; the task renews it (progress and a
    # heartbeat thread) and the beat sweep requeues a job whose worker stopped renewing.
    job_lease_seconds: int = 60
    # The sweep enqueues a queued job again when it should have started this long ago
    # (the broker was down at enqueue, or lost the message).
    job_requeue_after: int = 120
    # Only the beat holding the lock in Redis sends the schedule; it renews the lock every third of
    # this, and a standby beat takes over this long after the holder stopped renewing.
    beat_lock_ttl: int = 60
    # Where stored objects live: empty means local disk under var/storage; file:///path.
    storage_url: str = ""
    # Lifetime of a signed download link of an export archive, and of the archive itself.
    export_url_ttl: int = 15 * 60
    export_retention_hours: int = 72
    # Websocket relay: server heartbeat (and session re-check) interval, idle timeout
    # (no message from the client), time allowed for the auth message, per-connection
    # send queue (a client that lets it fill is disconnected), channels per connection.
    relay_heartbeat_interval: int = 25
    relay_idle_timeout: int = 75
    relay_auth_timeout: int = 10
    relay_send_queue: int = 256
    relay_max_channels: int = 50
    # Sockets that have not authenticated yet (they last at most RELAY_AUTH_TIMEOUT), per client
    # address (X-Forwarded-For through TRUSTED_PROXIES) and in all, per relay process; more close with 1013.
    relay_unauthenticated_per_address: int = 10
    relay_unauthenticated_max: int = 1000

    # --- Backups (docs/operations.md) ---
    # Where the scheduled backup goes: a directory or s3://bucket/prefix[?endpoint=...]. Empty: no
    # scheduled backup. BACKUP_SCHEDULE: an interval (6h, 1d) or a cron line ('15 3 * * *', UTC).
    # BACKUP_KEEP: complete backups kept; BACKUP_WITH_OBJECTS: copy the stored objects in too.
    backup_target: str = ""
    backup_schedule: str = "1d"
    backup_keep: int = 7
    backup_with_objects: bool = False

    # --- Uploads, scanning, object storage (docs/files.md) ---
    # clamd that scans every upload: unix:///path/clamd.sock or tcp://host:3310. Empty in
    # development: the clamd of `python -m ops.clamd` (<var_dir>/clamd/clamd.sock).
    clamd_url: str = ""
    # Seconds clamd may take to answer one read/write of a scan before it counts as down.
    clamd_timeout: int = 60
    # S3 credentials for STORAGE_URL=s3://...; empty: boto3's own chain (instance role, ...).
    aws_access_key_id: str = field(default="", repr=False)
    aws_secret_access_key: str = field(default="", repr=False)
    aws_session_token: str = field(default="", repr=False)
    # POST /v1/uploads streams at most this many bytes; larger files go through an intent.
    upload_direct_max_bytes: int = 25 * 1024 * 1024
    # Per purpose, whichever way the file arrives.
    upload_photo_max_bytes: int = 20 * 1024 * 1024
    upload_document_max_bytes: int = 50 * 1024 * 1024
    upload_avatar_max_bytes: int = 5 * 1024 * 1024
    # Seconds an upload intent's URL is valid; seconds a download link is valid.
    upload_intent_ttl: int = 15 * 60
    upload_url_ttl: int = 5 * 60

    # --- Search (docs/search.md) ---
    # Seconds a cached search result page lives in Redis (0: no cache). Any index change
    # makes cached pages obsolete at once; the TTL only bounds how long they take up memory.
    search_cache_ttl: int = 30
    # A full rebuild loads and builds indexes in this many database sessions at once, each index
    # build with this much maintenance_work_mem (so up to sessions x this, on the database server).
    search_rebuild_sessions: int = 2
    search_rebuild_maintenance_work_mem: str = "1GB"

    # --- Notifications, SMS, provider webhooks (docs/notifications.md) ---
    # outbox: one JSON file per text message under var/sms (development); twilio: the Twilio API.
    sms_backend: str = "outbox"
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    # The sender: a phone number (+15551234567) or a messaging service SID (MG...).
    twilio_from: str = ""
    twilio_api_url: str = "https://api.twilio.com"
    # SendGrid's signed event webhook: its verification key (base64 DER, as SendGrid shows it).
    sendgrid_webhook_public_key: str = field(default="", repr=False)
    # Seconds a phone verification code is valid.
    phone_code_ttl: int = 600
    # Seconds an email or text about a new message waits first: one the recipient reads in the app
    # meanwhile (they were online) is never sent.
    message_notification_delay: int = 120

    # --- Payments (docs/payments.md) ---
    # sandbox: deterministic, no network, state in Redis (development and tests); stripe: the Stripe API.
    payments_provider: str = "sandbox"
    stripe_api_key: str = field(default="", repr=False)
    # The signing secret of the Stripe webhook endpoint (whsec_...); the sandbox signs with it too.
    stripe_webhook_secret: str = field(default="", repr=False)
    stripe_api_url: str = "https://api.stripe.com"
    # Seconds a signed webhook's timestamp may be away from now before it counts as a replay.
    stripe_webhook_tolerance: int = 300

    # --- Supabase import (docs/import.md) ---
    # The source project's database (postgresql://...), read-only; the admin API's import job reads it
    # from here, never from a request body. Storage: its S3 endpoint and keys, or a local export directory.
    supabase_source_db_url: str = field(default="", repr=False)
    supabase_storage_endpoint: str = ""
    supabase_storage_region: str = ""
    supabase_storage_key_id: str = field(default="", repr=False)
    supabase_storage_secret: str = field(default="", repr=False)
    supabase_storage_dir: str = ""

    # --- Offers and escrow (docs/escrow.md) ---
    # Business days (Monday to Friday) the buyer has to deposit the earnest money once an offer is
    # accepted; an escrow still awaiting it then is cancelled and the listing goes back on the market.
    escrow_deposit_business_days: int = 3

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def supabase_compat_on(self) -> bool:
        """Whether /auth/v1 is served: SUPABASE_COMPAT, or by default everywhere but production."""
        return self.supabase_compat == "on" or (self.supabase_compat == "" and not self.production)

    @property
    def pages_url(self) -> str:
        """The origin (and path prefix) of the pages emailed links open, without a trailing slash."""
        return (self.frontend_url or self.public_url).rstrip("/")

    @property
    def outbox_dir(self) -> pathlib.Path:
        return self.var_dir / "outbox"

    @property
    def sms_outbox_dir(self) -> pathlib.Path:
        return self.var_dir / "sms"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``) and validate them."""
        environ = dict(os.environ if environ is None else environ)
        problems: list[str] = []
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = "HEARTH_" + f.name.upper() if f.name in _HEARTH_PREFIXED else f.name.upper()
            raw = environ.get(name)
            if raw is None:
                continue
            try:
                values[f.name] = parse_field(f, raw)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        values.update(overrides)
        if problems:
            raise SettingsError(problems)
        settings = cls(**values)
        settings = settings._with_development_defaults()
        settings.validate()
        return settings

    def _with_development_defaults(self) -> Settings:
        if self.production:
            return self
        changes: dict[str, Any] = {}
        if not self.secret_key:
            changes["secret_key"] = development_secret_key(self.var_dir)
        if not self.flower_password:
            changes["flower_password"] = DEVELOPMENT_FLOWER_PASSWORD
        if not self.stripe_webhook_secret:
            changes["stripe_webhook_secret"] = DEVELOPMENT_STRIPE_WEBHOOK_SECRET
        if not self.supabase_anon_key:
            changes["supabase_anon_key"] = DEVELOPMENT_SUPABASE_ANON_KEY
        if not self.cors_origins and self.env == "development":
            changes["cors_origins"] = DEVELOPMENT_CORS_ORIGINS
        return dataclasses.replace(self, **changes) if changes else self

    def validate(self) -> None:
        """Raise ``SettingsError`` listing every unsafe or malformed value."""
        problems = general_problems(self)
        problems.extend(job_and_relay_problems(self))
        try:
            parse_backup_schedule(self.backup_schedule)
        except ValueError as exc:
            problems.append(f"BACKUP_SCHEDULE must be {exc}")
        if self.backup_keep < 1:
            problems.append("BACKUP_KEEP must be at least 1")
        problems.extend(payments_problems(self))
        for name in ("rate_limit_default", "rate_limit_auth", "rate_limit_contact"):
            try:
                parse_rate(getattr(self, name))
            except ValueError as exc:
                problems.append(f"{name.upper()}: {exc}")
        if self.production:
            problems.extend(production_problems(self))
        else:
            problems.extend(self._listening_problems())
        if problems:
            raise SettingsError(problems)

    def _listening_problems(self) -> list[str]:
        # Outside production the secrets are development ones (a key on local disk, the
        # Flower password everyone knows, outbox mail): nothing may listen beyond loopback.
        return [
            f"{name.upper()}={getattr(self, name)} listens beyond this machine; outside "
            "HEARTH_ENV=production Hearth listens on loopback only (127.0.0.1, ::1, localhost)"
            for name in ("web_bind", "relay_bind", "flower_bind", "metrics_bind")
            if not is_loopback_bind(getattr(self, name))
        ]

    @property
    def clamd_address(self) -> str:
        """``CLAMD_URL``, or the development clamd's socket under ``var_dir``."""
        return self.clamd_url or f"unix://{self.var_dir / 'clamd' / 'clamd.sock'}"


# Variables that would be too generic without the prefix.
_HEARTH_PREFIXED = {"env", "debug", "var_dir"}


# What callers import from ``settings`` (the parsing and validation helpers live in its modules).
__all__ = [
    "DEVELOPMENT_CORS_ORIGINS",
    "DEVELOPMENT_FLOWER_PASSWORD",
    "DEVELOPMENT_STRIPE_WEBHOOK_SECRET",
    "ENVIRONMENTS",
    "MIN_SECRET_LENGTH",
    "RATE_UNITS",
    "ROOT",
    "STORAGE_URL_OPTIONS",
    "Settings",
    "SettingsError",
    "development_secret_key",
    "is_loopback_bind",
    "parse_rate",
]
