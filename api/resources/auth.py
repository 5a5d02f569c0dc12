"""``/v1/auth/*``: register, verify email, log in, refresh, log out, reset a forgotten password, unlock."""

from __future__ import annotations

import falcon

from api import auth_flows as flows
from api.audit import audit
from api.errors import Problem, conflict, too_many_requests, unauthorized, validation_error
from api.operation import client_ip, operation
from api.schemas.accounts import (
    Accepted,
    ForgotPasswordRequest,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    ResetPasswordRequest,
    TokenPair,
    UnlockAccountRequest,
    VerifyEmailRequest,
)
from api.schemas.mfa import MfaChallengeView
from models import mfa
from models.accounts import AccountToken, User
from models.db import db
from services.client_address import address_bucket

TAGS = ("auth",)
FORGOT_ANSWER = "If an account exists for that address, we sent it a link to reset the password."
REGISTER_ANSWER = "We sent an email to this address; follow it to finish signing up."


def password_error(field: str, problem: str) -> Problem:
    return validation_error([{"field": f"body.{field}", "message": f"password {problem}"}])


def issue_tokens(services, user: User, session, refresh_token: str) -> dict:
    access, _ = services.tokens.issue(
        user_id=user.id,
        role=user.role,
        session_id=session.id,
        aal=session.aal,
        amr=session.amr,
        mfa_pending=mfa.second_factor_pending(session),
    )
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": services.tokens.ttl,
        "refresh_token": refresh_token,
        "refresh_expires_at": session.expires_at.isoformat(),
        "user": user.profile(),
    }


def invalid_token(what: str) -> Problem:
    return Problem(
        falcon.HTTP_400, "Invalid token", f"This {what} link is invalid, used or expired.", slug="invalid-token"
    )


WRONG_CREDENTIALS = "The email or password is not correct."


class Register:
    @operation(
        "Create an account",
        body=RegisterRequest,
        response=Accepted,
        status=202,
        auth="none",
        rate="auth",
        errors=(422,),
        tags=TAGS,
        description="Always answers 202 with the same body, whether or not the address already has "
        "an account, so the answer tells nobody who is a Hearth user. A new address gets a "
        "buyer, seller or agent account and a verification link; the owner of a taken one "
        "gets an email saying someone tried to sign up with it, with a link to reset the "
        "password. No user id is returned: log in for the profile (`GET /v1/me`). Admins "
        "are created only with `hearth users create-admin`.",
    )
    def on_post(self, req, resp):
        body: RegisterRequest = req.context.body
        try:
            flows.register(req, email=body.email, password=body.password, full_name=body.full_name, role=body.role)
        except flows.WeakPassword as exc:
            raise password_error("password", exc.problem) from None
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted", "detail": REGISTER_ANSWER}


class VerifyEmail:
    @operation(
        "Verify an email address with the mailed token",
        body=VerifyEmailRequest,
        status=204,
        auth="none",
        rate="auth",
        errors=(400, 422),
        tags=TAGS,
    )
    def on_post(self, req, resp):
        try:
            flows.verify_email(req, req.context.body.token)
        except flows.BadMailedToken:
            raise invalid_token("verification") from None
        resp.status = falcon.HTTP_204


class ResendVerification:
    @operation(
        "Send the verification email again", response=Accepted, status=202, rate="auth", errors=(409,), tags=TAGS
    )
    def on_post(self, req, resp):
        user = User.get_by_id(req.context.principal.user_id)
        if user.email_verified_at is not None:
            raise conflict("This email address is already verified.", slug="already-verified")
        with db.atomic():
            job = flows.queue_verification(user)
        resp.status = falcon.HTTP_202
        resp.location = f"/v1/jobs/{job.id}"
        resp.media = {"status": "accepted", "detail": "A new verification email is on its way."}


class Login:
    @operation(
        "Log in with email and password",
        body=LoginRequest,
        response=TokenPair,
        alternative=MfaChallengeView,
        auth="none",
        rate="auth",
        errors=(401, 403, 429),
        tags=TAGS,
        description="Returns a short-lived access token (EdDSA JWT) and a single-use refresh "
        "token; for an account with two-factor login, a challenge instead (`mfa_required: true`, "
        "no token): send its `challenge_id` with a code to `POST /v1/auth/mfa/verify`. Repeated "
        "failures lock the account from the failing client address, and that address "
        "altogether, for a growing time (429 with Retry-After); "
        "failures from many addresses lock the account from everywhere and mail its "
        "owner a one-time unlock link (`POST /v1/auth/unlock`). Unknown emails, "
        "wrong passwords and accounts whose email is not verified yet answer the same "
        "401 (the emailed link, or a password reset, verifies the address).",
    )
    def on_post(self, req, resp):
        body: LoginRequest = req.context.body
        try:
            result = flows.login(req, body.email, body.password)
        except flows.LockedOut as exc:
            raise too_many_requests(exc.retry_after, "Too many failed logins; try again later.") from None
        except flows.InvalidCredentials:
            raise unauthorized(WRONG_CREDENTIALS) from None
        except flows.Banned:
            raise Problem(
                falcon.HTTP_403, "Account suspended", "This account has been suspended.", slug="account-suspended"
            ) from None
        if isinstance(result, flows.SecondFactorRequired):
            resp.media = result.challenge  # a verified factor: no session until POST /v1/auth/mfa/verify
            return
        resp.media = issue_tokens(req.context.services, result.user, result.session, result.refresh_token)


class Refresh:
    @operation(
        "Exchange a refresh token for new tokens",
        body=RefreshRequest,
        response=TokenPair,
        auth="none",
        rate="auth",
        errors=(401,),
        tags=TAGS,
        description="Refresh tokens are single use: each refresh returns a new one. Presenting "
        "a used refresh token again ends the whole session.",
    )
    def on_post(self, req, resp):
        try:
            result = flows.refresh(req, req.context.body.refresh_token)
        except flows.RefreshFailed:
            raise unauthorized("The refresh token is invalid, used or expired; log in again.") from None
        resp.media = issue_tokens(req.context.services, result.user, result.session, result.refresh_token)


class Logout:
    @operation("End this session", body=LogoutRequest, status=204, errors=(401,), tags=TAGS, before_mfa=True)
    def on_post(self, req, resp):
        flows.logout(req, "local")
        resp.status = falcon.HTTP_204


class LogoutAll:
    @operation("End every session of this account", status=204, errors=(401,), tags=TAGS)
    def on_post(self, req, resp):
        flows.logout(req, "global")
        resp.status = falcon.HTTP_204


class ForgotPassword:
    @operation(
        "Ask for a password-reset email",
        body=ForgotPasswordRequest,
        response=Accepted,
        status=202,
        auth="none",
        rate="auth",
        tags=TAGS,
        description="Always answers 202 with the same body, whether or not the address has "
        "an account; the worker decides whether to send.",
    )
    def on_post(self, req, resp):
        flows.request_password_reset(req.context.body.email)
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted", "detail": FORGOT_ANSWER}


class ResetPassword:
    @operation(
        "Choose a new password with the mailed token",
        body=ResetPasswordRequest,
        status=204,
        auth="none",
        rate="auth",
        errors=(400, 422),
        tags=TAGS,
        description="The token works once, for one hour. Every session of the account ends.",
    )
    def on_post(self, req, resp):
        body: ResetPasswordRequest = req.context.body
        try:
            flows.reset_password(req, body.token, body.password)
        except flows.BadMailedToken:
            raise invalid_token("reset") from None
        except flows.WeakPassword as exc:
            raise password_error("password", exc.problem) from None
        resp.status = falcon.HTTP_204


class UnlockAccount:
    @operation(
        "Lift an account-wide login lock with the mailed token",
        body=UnlockAccountRequest,
        status=204,
        auth="none",
        rate="auth",
        errors=(400, 422),
        tags=TAGS,
        description="When failed logins from many addresses lock an account, its owner is mailed a "
        "link that works once, for `ACCOUNT_UNLOCK_TTL` seconds. Redeeming it lets the "
        "client address that redeemed it past the account-wide lock for its next "
        "successful login, within 15 minutes; the password is still needed, and the "
        "account stays locked for every other address.",
    )
    def on_post(self, req, resp):
        services = req.context.services
        with db.atomic():
            token = AccountToken.redeem(req.context.body.token, "account_unlock")
            if token is None:
                raise invalid_token("unlock")
            user = User.get_by_id(token.user_id)
            audit(req, "user.unlock", user.id)
        services.lockout.grant(user.email, address_bucket(client_ip(req, services)))
        resp.status = falcon.HTTP_204
