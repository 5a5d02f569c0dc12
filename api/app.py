"""``create_app(settings, **collaborators)`` builds the whole Hearth API: its composition root.

Every collaborator (Redis client, token issuer, session cache, limiter,
lockout, job queue, event bus, storage, search cache, payments provider, clock, key ring) is
built once here, or passed in, so tests and benchmarks swap them without
monkeypatching. Resources reach them through ``req.context.services``.
Jobs created during a request are submitted after their commit by the
database middleware (``api.middleware.DatabaseConnection``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import falcon
import msgspec
import redis as redis_lib

from api import errors
from api.auth import Authenticator
from api.lockout import LoginLockout
from api.middleware import DatabaseConnection, RequestContext, SecurityHeaders
from api.ratelimit import RateLimiter
from api.resources import (
    admin,
    auth,
    conversations,
    docs,
    escrow_admin,
    escrows,
    exports,
    favorites,
    health,
    imports,
    jobs,
    me,
    mfa,
    moderation,
    notification_admin,
    notifications,
    offers,
    pages,
    payment_webhooks,
    phone,
    properties,
    property_media,
    saved_searches,
    search,
    supabase_auth,
    supabase_factors,
    supabase_user,
    uploads,
    webhooks,
)
from api.supabase_gateway import SupabaseGateway
from api.upload_flow import UploadService
from models import domain_events
from models.db import init_database
from models.session_cache import SessionCache
from services import metrics
from services.events import EventBus
from services.jobqueue import CeleryJobQueue
from services.payments import PaymentProvider, build_payments
from services.search_cache import SearchCache
from services.storage import make_storage
from services.tokens import KeyRing, TokenIssuer
from services.totp import TotpCodes
from settings import Settings, parse_rate


@dataclass
class Services:
    """What every request can reach through ``req.context.services``."""

    settings: Settings
    redis: redis_lib.Redis
    tokens: TokenIssuer
    sessions: SessionCache
    authenticator: Authenticator
    limiter: RateLimiter
    lockout: LoginLockout
    jobs: object
    rates: dict
    clock: object
    events: EventBus
    storage: object
    search_cache: SearchCache
    payments: PaymentProvider
    totp: TotpCodes


def _json_handler() -> falcon.media.JSONHandler:
    return falcon.media.JSONHandler(dumps=lambda obj: msgspec.json.encode(obj).decode(), loads=msgspec.json.decode)


def build_services(
    settings: Settings,
    *,
    redis=None,
    jobs=None,
    clock=time.time,
    keys=None,
    events=None,
    storage=None,
    search_cache=None,
    payments: PaymentProvider | None = None,
    totp: TotpCodes | None = None,
) -> Services:
    """Build every collaborator the API needs from ``settings``, except those passed in."""
    client = redis or redis_lib.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    keyring = keys or KeyRing.from_settings(settings)
    tokens = TokenIssuer(
        keyring, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl=settings.access_token_ttl, clock=clock
    )
    session_cache = SessionCache(client, settings.redis_prefix, ttl=settings.access_token_ttl)
    return Services(
        settings=settings,
        redis=client,
        tokens=tokens,
        sessions=session_cache,
        authenticator=Authenticator(tokens, session_cache, mfa_roles=settings.mfa_required_roles),
        limiter=RateLimiter(client, settings.redis_prefix, clock=clock),
        lockout=LoginLockout(
            client,
            settings.redis_prefix,
            pair_threshold=settings.login_lockout_threshold,
            ip_threshold=settings.login_ip_lockout_threshold,
            account_addresses=settings.login_account_lock_addresses,
        ),
        # Publishes by task name to the queues of celeryconfig's routes; the API imports no task.
        jobs=jobs if jobs is not None else CeleryJobQueue.from_settings(settings),
        rates={
            "default": parse_rate(settings.rate_limit_default),
            "auth": parse_rate(settings.rate_limit_auth),
            "contact": parse_rate(settings.rate_limit_contact),
        },
        clock=clock,
        events=events if events is not None else EventBus(client, settings.redis_prefix),
        storage=storage if storage is not None else make_storage(settings),
        search_cache=(
            search_cache
            if search_cache is not None
            else SearchCache(client, settings.redis_prefix, settings.search_cache_ttl)
        ),
        payments=payments if payments is not None else build_payments(settings, client),
        totp=totp if totp is not None else TotpCodes.from_secret_key(settings.secret_key, clock=clock),
    )


def create_app(
    settings: Settings, *, services: Services | None = None, init_db: bool = True, **collaborators
) -> falcon.App:
    """Build the WSGI app.

    ``services``: prebuilt collaborators (tests keep a handle on them);
    otherwise they are built from ``settings`` and ``collaborators``.
    ``init_db=False`` when the caller already bound the database proxy.
    """
    if init_db:
        init_database(settings)
    domain_events.listen(metrics.count_domain_event)
    services = services or build_services(settings, **collaborators)
    middleware: list[RequestContext | SecurityHeaders | DatabaseConnection | SupabaseGateway | falcon.CORSMiddleware]
    middleware = [RequestContext(services), SecurityHeaders(settings.production), DatabaseConnection(services)]
    if settings.supabase_compat_on:
        middleware.append(SupabaseGateway(settings.supabase_anon_key))
    if settings.cors_origins:
        middleware.insert(
            1,
            falcon.CORSMiddleware(
                allow_origins=list(settings.cors_origins),
                expose_headers=[
                    "Location",
                    "ETag",
                    "Retry-After",
                    "X-Request-ID",
                    "Idempotent-Replayed",
                    "RateLimit-Limit",
                    "RateLimit-Remaining",
                    "RateLimit-Reset",
                ],
                allow_credentials=None,
            ),
        )
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = _json_handler()
    app.req_options.media_handlers[falcon.MEDIA_JSON] = _json_handler()
    errors.install(app)
    add_routes(app, services)
    return app


def add_routes(app: falcon.App, services: Services) -> None:
    secret = services.settings.secret_key
    app.add_route("/healthz", health.Health())
    app.add_route("/readyz", health.Ready(services.settings.clamd_address))
    app.add_route("/.well-known/jwks.json", health.Jwks(services.tokens.keys))
    app.add_route("/v1/openapi.json", docs.OpenApi(app))
    app.add_route("/docs", docs.Docs())
    pages.add_routes(app)  # what the links in emails open (FRONTEND_URL may send them elsewhere)

    app.add_route("/v1/auth/register", auth.Register())
    app.add_route("/v1/auth/verify-email", auth.VerifyEmail())
    app.add_route("/v1/auth/verify-email/resend", auth.ResendVerification())
    app.add_route("/v1/auth/login", auth.Login())
    app.add_route("/v1/auth/refresh", auth.Refresh())
    app.add_route("/v1/auth/logout", auth.Logout())
    app.add_route("/v1/auth/logout-all", auth.LogoutAll())
    app.add_route("/v1/auth/password/forgot", auth.ForgotPassword())
    app.add_route("/v1/auth/password/reset", auth.ResetPassword())
    app.add_route("/v1/auth/unlock", auth.UnlockAccount())
    mfa.add_routes(app)  # two-factor login (docs/auth.md)

    if services.settings.supabase_compat_on:
        add_supabase_routes(app, services)

    app.add_route("/v1/me", me.Me())
    app.add_route("/v1/me/password", me.MyPassword())
    sessions = me.MySessions()
    app.add_route("/v1/me/sessions", sessions)
    app.add_route("/v1/me/sessions/{session_id:uuid}", sessions, suffix="item")

    users = admin.AdminUsers(secret)
    app.add_route("/v1/admin/users", users)
    app.add_route("/v1/admin/users/{user_id}", users, suffix="item")
    app.add_route("/v1/admin/audit", admin.AdminAudit(secret))

    # Jobs, the personal data export and signed downloads (docs/jobs-and-events.md).
    job_views = jobs.JobViews(services.events, services.storage, services.settings.export_url_ttl)
    my_jobs = jobs.Jobs(secret, job_views)
    app.add_route("/v1/jobs", my_jobs)
    app.add_route("/v1/jobs/{job_id:uuid}", my_jobs, suffix="item")
    app.add_route("/v1/jobs/{job_id:uuid}/cancel", my_jobs, suffix="cancel")
    app.add_route("/v1/admin/jobs/selftest", jobs.JobSelftest(job_views))
    app.add_route("/v1/me/export", exports.MyExport(job_views))
    app.add_route("/v1/downloads/{key:path}", exports.Downloads(services.storage))
    # The Supabase import (docs/import.md).
    admin_imports = imports.AdminImports(secret, job_views)
    app.add_route("/v1/admin/imports", admin_imports)
    app.add_route("/v1/admin/imports/{import_id}", admin_imports, suffix="item")
    app.add_route("/v1/admin/imports/{import_id}/report", admin_imports, suffix="report")

    # Uploads, virus scanning, signed downloads and listing media (docs/files.md).
    upload_service = UploadService(services.settings, job_views)
    my_uploads = uploads.Uploads(upload_service, secret)
    app.add_route("/v1/uploads", my_uploads)
    app.add_route("/v1/uploads/intents", my_uploads, suffix="intents")
    app.add_route("/v1/uploads/{upload_id:uuid}", my_uploads, suffix="item")
    app.add_route("/v1/uploads/{upload_id:uuid}/complete", my_uploads, suffix="complete")
    app.add_route("/v1/uploads/{upload_id:uuid}/content", my_uploads, suffix="content")
    app.add_route("/v1/uploads/{upload_id:uuid}/download", my_uploads, suffix="download")
    app.add_route("/v1/admin/uploads/{upload_id:uuid}/rescan", uploads.AdminUploadRescan(upload_service))
    documents = property_media.ListingDocumentsResource()
    app.add_route("/v1/properties/{property_id:uuid}/photos", property_media.ListingPhotosResource())
    app.add_route("/v1/properties/{property_id:uuid}/documents", documents)
    app.add_route("/v1/properties/{property_id:uuid}/documents/{upload_id:uuid}", documents, suffix="item")

    # Listings and favorites (docs/listings.md). GET /v1/properties (search) is served by the same class.
    app.add_route("/v1/properties", properties.PropertyCollection())
    listing = properties.PropertyItem(secret)
    app.add_route("/v1/properties/{property_id:uuid}", listing)
    app.add_route("/v1/properties/{property_id:uuid}/history", listing, suffix="history")
    saved = favorites.MyFavorites(secret)
    app.add_route("/v1/me/favorites", saved)
    app.add_route("/v1/me/favorites/{property_id:uuid}", saved, suffix="item")

    # Escrows of accepted offers (docs/escrow.md): the parties act, admins resolve disputes.
    my_escrows = escrows.Escrows(secret)
    app.add_route("/v1/escrows", my_escrows)
    app.add_route("/v1/escrows/{escrow_id:uuid}", my_escrows, suffix="item")
    app.add_route("/v1/escrows/{escrow_id:uuid}/contingencies/{kind}/remove", my_escrows, suffix="contingency")
    app.add_route("/v1/escrows/{escrow_id:uuid}/cancel", my_escrows, suffix="cancel")
    app.add_route("/v1/escrows/{escrow_id:uuid}/instructions", my_escrows, suffix="instructions")
    app.add_route("/v1/escrows/{escrow_id:uuid}/disputes", my_escrows, suffix="disputes")
    all_escrows = escrow_admin.AdminEscrows(secret)
    app.add_route("/v1/admin/escrows", all_escrows)
    app.add_route("/v1/admin/escrows/{escrow_id:uuid}/resolution", all_escrows, suffix="resolution")
    admin_payments = escrow_admin.AdminPayments(secret)
    app.add_route("/v1/admin/payments", admin_payments)
    app.add_route("/v1/admin/payments/{payment_id:uuid}/retry", admin_payments, suffix="retry")

    # The search index's state and full rebuild (docs/search.md); the search itself is GET /v1/properties.
    search_admin = search.SearchAdmin(job_views)
    app.add_route("/v1/admin/search/status", search_admin, suffix="status")
    app.add_route("/v1/admin/search/reindex", search_admin, suffix="reindex")

    # Conversations about listings, blocks and reports (docs/messaging.md).
    chats = conversations.Conversations(secret)
    app.add_route("/v1/conversations", chats)
    app.add_route("/v1/conversations/{conversation_id:uuid}", chats, suffix="item")
    app.add_route("/v1/conversations/{conversation_id:uuid}/messages", chats, suffix="messages")
    app.add_route("/v1/conversations/{conversation_id:uuid}/read", chats, suffix="read")
    blocks = moderation.MyBlocks(secret)
    app.add_route("/v1/me/blocks", blocks)
    app.add_route("/v1/me/blocks/{user_id:uuid}", blocks, suffix="item")
    app.add_route("/v1/reports", moderation.Reports())
    reports = moderation.AdminReports(secret)
    app.add_route("/v1/admin/reports", reports)
    app.add_route("/v1/admin/reports/{report_id:uuid}", reports, suffix="item")

    # Notifications, preferences, phone verification, unsubscribe, provider webhooks
    # (docs/notifications.md).
    inbox = notifications.MyNotifications(secret)
    app.add_route("/v1/me/notifications", inbox)
    app.add_route("/v1/me/notifications/read-all", inbox, suffix="read_all")
    app.add_route("/v1/me/notifications/{notification_id:uuid}/read", inbox, suffix="read")
    app.add_route("/v1/me/notification-preferences", notifications.MyNotificationPreferences())
    my_phone = phone.MyPhone()
    app.add_route("/v1/me/phone", my_phone)
    app.add_route("/v1/me/phone/verify", my_phone, suffix="verify")
    app.add_route("/v1/unsubscribe", notifications.Unsubscribe())
    app.add_route("/v1/admin/notification-deliveries", notification_admin.AdminDeliveries(secret))
    suppressions = notification_admin.AdminSuppressions(secret)
    app.add_route("/v1/admin/email-suppressions", suppressions)
    app.add_route("/v1/admin/email-suppressions/{email}", suppressions, suffix="item")
    app.add_route("/v1/webhooks/sendgrid", webhooks.SendGridEvents())
    app.add_route("/v1/webhooks/twilio", webhooks.TwilioStatus())

    # The payments provider's webhook and the sandbox's delivery of it (docs/payments.md).
    app.add_route("/v1/webhooks/stripe", payment_webhooks.StripeEvents())
    app.add_route("/v1/admin/payments/sandbox/events", payment_webhooks.SandboxEvents())

    # Saved searches (docs/search.md); their alerts come from a beat task.
    searches = saved_searches.MySavedSearches(secret)
    app.add_route("/v1/me/saved-searches", searches)
    app.add_route("/v1/me/saved-searches/{search_id:uuid}", searches, suffix="item")

    # Offers and counter-offers on listings (docs/escrow.md).
    listing_offers = offers.ListingOffers(secret)
    app.add_route("/v1/properties/{property_id:uuid}/offers", listing_offers)
    my_offers = offers.Offers(secret, deposit_business_days=services.settings.escrow_deposit_business_days)
    app.add_route("/v1/offers", my_offers)
    app.add_route("/v1/offers/{offer_id:uuid}", my_offers, suffix="item")
    for action in ("accept", "reject", "withdraw", "counter"):
        app.add_route(f"/v1/offers/{{offer_id:uuid}}/{action}", my_offers, suffix=action)


def add_supabase_routes(app: falcon.App, services: Services) -> None:
    """The Supabase-compatible auth API (docs/supabase-compat.md): GoTrue's paths on Hearth's accounts."""
    app.add_route("/auth/v1/signup", supabase_auth.Signup())
    app.add_route("/auth/v1/token", supabase_auth.Token())
    app.add_route("/auth/v1/user", supabase_user.SupabaseUser())
    supabase_factors.add_routes(app)  # supabase-js mfa.* on the same factors as /v1/auth/mfa
    app.add_route("/auth/v1/logout", supabase_auth.Logout())
    app.add_route("/auth/v1/recover", supabase_auth.Recover())
    app.add_route("/auth/v1/verify", supabase_auth.Verify())
    app.add_route("/auth/v1/settings", supabase_auth.Settings())
    app.add_route("/auth/v1/.well-known/jwks.json", health.Jwks(services.tokens.keys))
