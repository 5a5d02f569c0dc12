"""GoTrue's wire format for the Supabase-compatible ``/auth/v1``: users, sessions, token claims, errors.

Pure translations of Hearth's rows and outcomes into what supabase-js (auth-js)
reads; the flows themselves are ``api.auth_flows``'. Reusable by every
``/auth/v1`` resource, MFA factors included.
"""

from __future__ import annotations

import datetime
from typing import Any

import falcon
import msgspec

from api.errors import Problem
from models import mfa
from models.accounts import AuthSession, User
from models.identities import UserIdentity

AUDIENCE = "authenticated"
API_VERSION_HEADER = "X-Supabase-Api-Version"
API_VERSION = "2024-01-01"
_encoder = msgspec.json.Encoder()


def _time(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _epoch(value: datetime.datetime) -> int:
    return int(value.timestamp())


# --- users -------------------------------------------------------------------------------------


def identities(user: User) -> list[dict[str, Any]]:
    """The user's sign-in identities as GoTrue lists them: imported ones, plus the email one Hearth implies."""
    rows = list(UserIdentity.select().where(UserIdentity.user == user.id).order_by(UserIdentity.created_at))
    found = [
        {
            "identity_id": str(row.id),
            "id": row.provider_id,
            "user_id": str(user.id),
            "identity_data": row.identity_data or {},
            "provider": row.provider,
            "last_sign_in_at": _time(row.last_sign_in_at),
            "created_at": _time(row.created_at),
            "updated_at": _time(row.updated_at),
            "email": row.email,
        }
        for row in rows
    ]
    if user.password_hash and not any(item["provider"] == "email" for item in found):
        # A password account is an email identity to GoTrue, whose id is the user's.
        found.insert(
            0,
            {
                "identity_id": str(user.id),
                "id": str(user.id),
                "user_id": str(user.id),
                "identity_data": {
                    "email": user.email,
                    "email_verified": user.email_verified_at is not None,
                    "phone_verified": False,
                    "sub": str(user.id),
                },
                "provider": "email",
                "last_sign_in_at": _time(user.last_login_at),
                "created_at": _time(user.created_at),
                "updated_at": _time(user.updated_at),
                "email": user.email,
            },
        )
    return found


def app_metadata(user: User, providers: list[str]) -> dict[str, Any]:
    """GoTrue's ``app_metadata``: the providers, and Hearth's role (which only Hearth changes)."""
    return {"provider": providers[0] if providers else "email", "providers": providers, "hearth_role": user.role}


def user_metadata(user: User) -> dict[str, Any]:
    return {**(user.user_metadata or {}), "full_name": user.full_name}


def factor_view(factor: mfa.MfaFactor) -> dict[str, Any]:
    """A factor as GoTrue lists it in the user (supabase-js ``mfa.listFactors`` reads these): never its secret."""
    view = {
        "id": str(factor.id),
        "factor_type": factor.factor_type,
        "status": factor.status,
        "phone": "",
        "created_at": _time(factor.created_at),
        "updated_at": _time(factor.updated_at),
        "last_challenged_at": _time(factor.last_used_at),
    }
    if factor.friendly_name:  # GoTrue leaves an empty name out
        view["friendly_name"] = factor.friendly_name
    return view


def user_view(user: User) -> dict[str, Any]:
    """A user in GoTrue's shape (what ``GET /auth/v1/user`` answers and sessions carry).

    ``factors`` is there only when the user has some, as GoTrue leaves it out when empty.
    """
    found = identities(user)
    factors = mfa.factors_of(user.id)
    providers = list(dict.fromkeys(item["provider"] for item in found)) or ["email"]
    phone_confirmed = user.phone_verified_at if user.phone else None
    return {
        "id": str(user.id),
        "aud": AUDIENCE,
        "role": AUDIENCE,
        "email": user.email,
        "email_confirmed_at": _time(user.email_verified_at),
        "phone": user.phone or "",
        "phone_confirmed_at": _time(phone_confirmed),
        "confirmed_at": _time(user.email_verified_at or phone_confirmed),
        "last_sign_in_at": _time(user.last_login_at),
        "app_metadata": app_metadata(user, providers),
        "user_metadata": user_metadata(user),
        "identities": found,
        "created_at": _time(user.created_at),
        "updated_at": _time(user.updated_at),
        "is_anonymous": False,
        **({"banned_until": _time(user.banned_until)} if user.banned_until else {}),
        **({"factors": [factor_view(factor) for factor in factors]} if factors else {}),
    }


def unconfirmed_signup_view(user_id: str, email: str, metadata: dict[str, Any], now: datetime.datetime) -> dict:
    """What a sign-up answers while the address awaits confirmation: the same shape for new and taken addresses.

    GoTrue answers a taken address with an empty ``identities`` list, which tells
    who has an account; Hearth answers every sign-up with an empty list.
    """
    stamp = now.isoformat()
    return {
        "id": user_id,
        "aud": AUDIENCE,
        "role": AUDIENCE,
        "email": email,
        "phone": "",
        "confirmation_sent_at": stamp,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": metadata,
        "identities": [],
        "created_at": stamp,
        "updated_at": stamp,
        "is_anonymous": False,
    }


# --- sessions and their access tokens ------------------------------------------------------------


def access_claims(user: User, session: AuthSession, methods: list[str]) -> dict[str, Any]:
    """The claims supabase-js reads beyond the registered ones (``TokenIssuer.issue_compat`` adds those)."""
    view_providers = [item["provider"] for item in identities(user)] or ["email"]
    return {
        "email": user.email,
        "phone": user.phone or "",
        "app_metadata": app_metadata(user, list(dict.fromkeys(view_providers))),
        "user_metadata": user_metadata(user),
        # The level the session reached (two-factor login raises it to aal2; refreshes keep it).
        "aal": session.aal,
        "amr": session.amr or [{"method": method, "timestamp": _epoch(session.created_at)} for method in methods],
        "is_anonymous": False,
    }


def session_view(services, user: User, session: AuthSession, refresh_token: str, methods: list[str]) -> dict:
    """A GoTrue session: a fresh access token, its lifetime, the refresh token and the user.

    A session that owes its account's second factor gets a token that says so (``api.auth``).
    """
    token, expires_at = services.tokens.issue_compat(
        user_id=user.id,
        session_id=session.id,
        claims=access_claims(user, session, methods),
        mfa_pending=mfa.second_factor_pending(session),
    )
    return {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": services.tokens.ttl,
        "expires_at": expires_at,
        "refresh_token": refresh_token,
        "user": user_view(user),
    }


# --- errors --------------------------------------------------------------------------------------


def gotrue_error(status: str, code: str, message: str, *, headers=None, **extra) -> Problem:
    """An error ``/auth/v1`` answers in GoTrue's shape with ``code`` (``invalid_credentials``, ...)."""
    problem = Problem(status, "Auth error", message, slug=code, headers=headers, **extra)
    problem.gotrue_code = code  # type: ignore[attr-defined]
    return problem


# What Hearth's own problems become when they leave /auth/v1: (status, code) by problem slug.
_BY_SLUG = {
    "validation": (400, "validation_failed"),
    "malformed-json": (400, "bad_json"),
    "payload-too-large": (413, "request_too_large"),
    "unsupported-media-type": (400, "validation_failed"),
    "rate-limited": (429, "over_request_rate_limit"),
    "not-found": (404, "not_found"),
    "forbidden": (403, "not_admin"),
    "unavailable": (503, "unexpected_failure"),
    "internal": (500, "unexpected_failure"),
}


def requested_version(req: falcon.Request) -> bool:
    """Whether the client asked for the 2024-01-01 API (errors then carry their code in ``code``)."""
    value = (req.get_header(API_VERSION_HEADER) or "").strip()
    try:
        return datetime.date.fromisoformat(value) >= datetime.date(2024, 1, 1)
    except ValueError:
        return False


def _message(exc: falcon.HTTPError) -> str:
    extra = getattr(exc, "extra", None) or {}
    errors = extra.get("errors")
    if errors:
        return "; ".join(f"{item['field']}: {item['message']}" for item in errors)
    return exc.description or exc.title or "Request failed"


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Write ``exc`` as GoTrue would: ``{code, message}`` for 2024-01-01 clients, else ``{code, error_code, msg}``."""
    extra = dict(getattr(exc, "extra", None) or {})
    if getattr(exc, "gateway", False):  # the API gateway's own answer (a missing or wrong apikey)
        resp.status = exc.status
        resp.content_type = falcon.MEDIA_JSON
        resp.data = _encoder.encode({"message": exc.description, "hint": extra.get("hint")})
        return
    status = getattr(exc, "gotrue_status", None) or exc.status_code
    code = getattr(exc, "gotrue_code", None)
    if code is not None:
        resp.status = falcon.code_to_http_status(status)
    else:
        status, code = _BY_SLUG.get(getattr(exc, "slug", None) or "", (status, _default_code(status)))
        resp.status = falcon.code_to_http_status(status)
    extra.pop("errors", None)
    retry_after = extra.pop("retry_after", None)
    if requested_version(req):
        body: dict[str, Any] = {"code": code, "message": _message(exc)}
        resp.set_header(API_VERSION_HEADER, API_VERSION)
    else:
        body = {"code": status, "error_code": code, "msg": _message(exc)}
    body.update(extra)
    if retry_after is not None:
        resp.set_header("Retry-After", str(retry_after))
    resp.set_header("x-sb-error-code", code)
    resp.content_type = falcon.MEDIA_JSON
    resp.data = _encoder.encode(body)


def _default_code(status: int) -> str:
    if status >= 500:
        return "unexpected_failure"
    return {401: "no_authorization", 404: "not_found", 429: "over_request_rate_limit"}.get(status, "validation_failed")
