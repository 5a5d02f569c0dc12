"""``/auth/v1``: the Supabase-compatible (GoTrue) sign-up, token, logout, recovery, verification and settings.

Every flow is ``api.auth_flows``' (the same as ``/v1/auth``'s); this module only
reads GoTrue's requests and writes GoTrue's answers (``api.supabase_shapes``).
See docs/supabase-compat.md.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import falcon
import msgspec

from api import auth_flows as flows
from api.operation import decode_body, operation
from api.schemas.supabase import (
    GrantQuery,
    LogoutQuery,
    PasswordGrantBody,
    RecoverBody,
    RefreshGrantBody,
    SignupBody,
    VerifyBody,
    VerifyQuery,
)
from api.supabase_gateway import allowed_redirect
from api.supabase_shapes import gotrue_error, session_view, unconfirmed_signup_view
from models.accounts import SELF_SERVICE_ROLES, User
from models.base import utcnow

TAGS = ("supabase-auth",)
INVALID_LOGIN = "Invalid login credentials"
OTP_INVALID = "Token has expired or is invalid"
# GoTrue's limit on user_metadata is its column; Hearth bounds what one account may store.
MAX_METADATA_BYTES = 8 * 1024
EMAIL_TYPES = ("signup", "email", "invite", "magiclink")


def validation_failed(message: str):
    return gotrue_error(falcon.HTTP_400, "validation_failed", message)


def weak_password(problem: str):
    return gotrue_error(
        falcon.HTTP_422,
        "weak_password",
        f"Password {problem}",
        weak_password={"reasons": ["length" if "characters" in problem else "pwned"]},
    )


def banned():
    return gotrue_error(falcon.HTTP_400, "user_banned", "User is banned")


def rate_limited(retry_after: int):
    return gotrue_error(
        falcon.HTTP_429,
        "over_request_rate_limit",
        "Too many failed logins; try again later.",
        headers={"Retry-After": str(max(1, retry_after))},
    )


def checked_metadata(data: dict | None) -> dict:
    """``data`` as user_metadata, or a 400 when it is too large to keep."""
    data = data or {}
    if len(msgspec.json.encode(data)) > MAX_METADATA_BYTES:
        raise validation_failed(f"data is limited to {MAX_METADATA_BYTES} bytes of JSON")
    return data


def redirect_param(req: falcon.Request) -> str:
    return allowed_redirect(req.context.services.settings, req.get_param("redirect_to"))


def respond_session(req: falcon.Request, resp: falcon.Response, result: flows.SignedIn) -> None:
    resp.media = session_view(req.context.services, result.user, result.session, result.refresh_token, result.methods)


class Signup:
    @operation(
        "Sign up with email and password (GoTrue)", auth="none", rate="auth", tags=TAGS, raw_body="application/json"
    )
    def on_post(self, req, resp):
        body = decode_body(req, SignupBody, req.context.services.settings.max_body_bytes)
        if body.phone is not None and body.email is None:
            raise gotrue_error(falcon.HTTP_422, "phone_provider_disabled", "Phone signups are disabled")
        if body.email is None:
            raise validation_failed("Signup requires an email address")
        if not body.password:
            raise validation_failed("Signup requires a valid password")
        data = checked_metadata(body.data)
        name = data.get("full_name") or data.get("name")
        full_name = name.strip()[:200] if isinstance(name, str) and name.strip() else body.email.split("@")[0][:200]
        asked = data.get("role")
        role = asked if isinstance(asked, str) and asked in SELF_SERVICE_ROLES else "buyer"
        try:
            user = flows.register(
                req,
                email=body.email,
                password=body.password,
                full_name=full_name,
                role=role,
                metadata={key: value for key, value in data.items() if key != "role"},
                compat_redirect=redirect_param(req),
            )
        except flows.WeakPassword as exc:
            raise weak_password(exc.problem) from None
        # Email confirmation is always on: a user without a session, shaped alike for a taken address.
        user_id = str(user.id) if user is not None else str(uuid.uuid4())
        resp.media = unconfirmed_signup_view(user_id, User.normalize_email(body.email), data, utcnow())


class Token:
    @operation(
        "Sign in or refresh a session (GoTrue grant_type=password|refresh_token)",
        auth="none",
        rate="auth",
        query=GrantQuery,
        tags=TAGS,
        raw_body="application/json",
    )
    def on_post(self, req, resp):
        grant = req.context.query.grant_type
        limit = req.context.services.settings.max_body_bytes
        if grant == "password":
            self._password(req, resp, decode_body(req, PasswordGrantBody, limit))
        elif grant == "refresh_token":
            self._refresh(req, resp, decode_body(req, RefreshGrantBody, limit))
        else:
            raise gotrue_error(falcon.HTTP_400, "invalid_credentials", "unsupported_grant_type")

    @staticmethod
    def _password(req, resp, body: PasswordGrantBody) -> None:
        if body.phone is not None and body.email is None:
            raise gotrue_error(falcon.HTTP_422, "phone_provider_disabled", "Phone logins are disabled")
        if body.email is None or body.password is None:
            raise validation_failed("missing email or phone")
        try:
            # As GoTrue does: an aal1 session even for an account with a verified factor, which
            # supabase-js then raises with mfa.challenge + mfa.verify; until then it opens nothing else.
            result = flows.password_session(req, body.email, body.password)
        except flows.LockedOut as exc:
            raise rate_limited(exc.retry_after) from None
        except flows.InvalidCredentials:
            raise gotrue_error(falcon.HTTP_400, "invalid_credentials", INVALID_LOGIN) from None
        except flows.Banned:
            raise banned() from None
        respond_session(req, resp, result)

    @staticmethod
    def _refresh(req, resp, body: RefreshGrantBody) -> None:
        if not body.refresh_token:
            raise validation_failed("Refresh token is not valid")
        try:
            result = flows.refresh(req, body.refresh_token)
        except flows.RefreshFailed as exc:
            if exc.reused:
                raise gotrue_error(
                    falcon.HTTP_400, "refresh_token_already_used", "Invalid Refresh Token: Already Used"
                ) from None
            if str(exc) == "unknown refresh token":
                raise gotrue_error(
                    falcon.HTTP_400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"
                ) from None
            raise gotrue_error(
                falcon.HTTP_400, "session_not_found", "Invalid Refresh Token: No Valid Session Found"
            ) from None
        respond_session(req, resp, result)


class Logout:
    @operation("Sign out (GoTrue scope=global|local|others)", status=204, query=LogoutQuery, tags=TAGS, before_mfa=True)
    def on_post(self, req, resp):
        flows.logout(req, req.context.query.scope)
        resp.status = falcon.HTTP_204


class Recover:
    @operation(
        "Ask for a password-recovery email (GoTrue)", auth="none", rate="auth", tags=TAGS, raw_body="application/json"
    )
    def on_post(self, req, resp):
        body = decode_body(req, RecoverBody, req.context.services.settings.max_body_bytes)
        if body.email is None:
            raise validation_failed("Password recovery requires an email")
        # The same answer and work for every address; the worker decides whether to send.
        flows.request_password_reset(body.email, compat_redirect=redirect_param(req))
        resp.media = {}


class Verify:
    @operation(
        "Verify a mailed token for a session (GoTrue)", auth="none", rate="auth", tags=TAGS, raw_body="application/json"
    )
    def on_post(self, req, resp):
        body = decode_body(req, VerifyBody, req.context.services.settings.max_body_bytes)
        if body.type is None:
            raise validation_failed("Verify requires a verification type")
        if body.token_hash is not None:
            if body.token is not None or body.email is not None:
                raise validation_failed("Only the token_hash and type should be provided")
            token, email = body.token_hash, None
        elif body.token is not None and body.email is not None:
            token, email = body.token, body.email
        else:
            raise validation_failed("Verify requires either a token and an email, or a token hash")
        respond_session(req, resp, self.redeem(req, body.type, token, email))

    @operation(
        "Open an emailed verification link: redirects with the session in the URL fragment (GoTrue)",
        auth="none",
        rate="auth",
        status=303,
        query=VerifyQuery,
        tags=TAGS,
    )
    def on_get(self, req, resp):
        query: VerifyQuery = req.context.query
        target = allowed_redirect(req.context.services.settings, query.redirect_to)
        resp.status = falcon.HTTP_303
        if query.type is None or query.token is None:
            resp.location = _with_fragment(
                target,
                error="invalid_request",
                error_code="validation_failed",
                error_description="Verify requires a token and a type",
            )
            return
        try:
            result = self.redeem(req, query.type, query.token, None)
        except falcon.HTTPError as exc:
            code = getattr(exc, "gotrue_code", "otp_expired")
            resp.location = _with_fragment(
                target, error="access_denied", error_code=code, error_description=exc.description or code
            )
            return
        session = session_view(req.context.services, result.user, result.session, result.refresh_token, result.methods)
        resp.location = _with_fragment(
            target,
            access_token=session["access_token"],
            expires_at=session["expires_at"],
            expires_in=session["expires_in"],
            refresh_token=session["refresh_token"],
            token_type="bearer",  # noqa: S106 -- the OAuth token type, not a secret
            type=query.type,
        )

    @staticmethod
    def redeem(req, kind: str, token: str, email: str | None) -> flows.SignedIn:
        """A session for a mailed token of ``kind``: a confirmed address, or a password recovery."""
        try:
            if kind in EMAIL_TYPES:
                user = flows.verify_email(req, token, email=email)
                if user.is_banned:
                    raise flows.Banned()
                return flows.start_session(req, user, methods=("otp",))
            if kind == "recovery":
                return flows.recover_session(req, token, email=email)
        except flows.BadMailedToken:
            raise gotrue_error(falcon.HTTP_403, "otp_expired", OTP_INVALID) from None
        except flows.Banned:
            raise gotrue_error(falcon.HTTP_403, "user_banned", "User is banned") from None
        raise validation_failed("Unsupported verification type")


def _with_fragment(url: str, **values) -> str:
    base = url.split("#", 1)[0]
    return f"{base}#{urlencode({key: str(value) for key, value in values.items()})}"


class Settings:
    @operation("What this auth server offers (GoTrue settings)", auth="none", tags=TAGS)
    def on_get(self, req, resp):
        providers = ("apple", "azure", "bitbucket", "discord", "facebook", "figma", "github", "gitlab", "google")
        resp.media = {
            "external": {**dict.fromkeys(providers, False), "email": True, "phone": False},
            "disable_signup": False,
            "mailer_autoconfirm": False,
            "phone_autoconfirm": False,
            "sms_provider": "",
            "saml_enabled": False,
            "passkeys_enabled": False,
        }
