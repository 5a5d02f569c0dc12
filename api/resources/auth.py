"""``/v1/auth/*``: register, verify email, log in, refresh, log out, reset a forgotten password, unlock."""

from __future__ import annotations

import falcon
from peewee import IntegrityError

from api import mfa_flow
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
from models import sessions
from models.accounts import AccountToken, User
from models.base import utcnow
from models.db import db
from models.jobs import Job
from models.passwords import hash_password, needs_rehash, policy_problem, verify_password
from services.client_address import address_bucket

TAGS = ("auth",)
FORGOT_ANSWER = "If an account exists for that address, we sent it a link to reset the password."
REGISTER_ANSWER = "We sent an email to this address; follow it to finish signing up."


def password_error(field: str, problem: str) -> Problem:
    return validation_error([{"field": f"body.{field}", "message": f"password {problem}"}])


def issue_tokens(services, user: User, session, refresh_token: str) -> dict:
    access, _ = services.tokens.issue(
        user_id=user.id, role=user.role, session_id=session.id, aal=session.aal, amr=session.amr
    )
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": services.tokens.ttl,
        "refresh_token": refresh_token,
        "refresh_expires_at": session.expires_at.isoformat(),
        "user": user.profile(),
    }


def queue_verification(user: User) -> Job:
    return Job.create(
        kind="accounts.send_verification_email", queue="notify", owner=user.id, input={"user_id": str(user.id)}
    )


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
        email = User.normalize_email(body.email)
        problem = policy_problem(body.password, email=email, full_name=body.full_name)
        if problem:
            raise password_error("password", problem)
        # Hashed whether or not the address is taken: the hash is most of the request's time.
        password_hash = hash_password(body.password)
        try:
            with db.atomic():
                user = User.create(
                    email=email, password_hash=password_hash, full_name=body.full_name.strip(), role=body.role
                )
                queue_verification(user)
                audit(req, "user.register", user.id, after={"email": email, "role": body.role})
        except IntegrityError as exc:  # the unique index on email decides, even under concurrent sign-ups
            if "users_email_key" not in str(exc):
                raise
            self._notify_owner(req, email)
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted", "detail": REGISTER_ANSWER}

    @staticmethod
    def _notify_owner(req, email: str) -> None:
        with db.atomic():
            owner = User.get_or_none(User.email == email)
            Job.create(kind="accounts.send_signup_notice", queue="notify", input={"email": email})
            if owner is not None:  # None only if the account was deleted since the insert failed
                audit(req, "user.register_taken", owner.id)


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
        with db.atomic():
            token = AccountToken.redeem(req.context.body.token, "verify_email")
            if token is None:
                raise Problem(
                    falcon.HTTP_400,
                    "Invalid token",
                    "This verification link is invalid, used or expired.",
                    slug="invalid-token",
                )
            User.update(email_verified_at=utcnow(), updated_at=utcnow()).where(
                (User.id == token.user_id) & User.email_verified_at.is_null()
            ).execute()
            audit(req, "user.verify_email", token.user_id)
        req.context.services.sessions.store_profile(User.get_by_id(token.user_id))
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
            job = queue_verification(user)
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
        services = req.context.services
        body: LoginRequest = req.context.body
        email = User.normalize_email(body.email)
        ip = address_bucket(client_ip(req, services))
        locked = services.lockout.locked_for(email, ip)
        if locked:
            raise too_many_requests(locked, "Too many failed logins; try again later.")
        user = User.get_or_none(User.email == email)
        stored = user.password_hash if user else None
        # Checked first and always: an unknown address takes as long as a wrong password (and fails).
        if not verify_password(stored, body.password) or user is None or stored is None:
            if services.lockout.failed(email, ip).mail_unlock_link:
                # Queued whether or not the email has an account, like a password reset: the worker decides.
                Job.create(kind="accounts.send_unlock_link", queue="notify", input={"email": email})
            raise unauthorized("The email or password is not correct.")
        if user.email_verified_at is None:
            # Registration answers a taken address like a new one; were an unverified account able
            # to log in, registering with any password and then logging in with it would tell
            # whether the address was free. So it answers exactly like a wrong password (same
            # status, body and work done); the mailed link, or a password reset, verifies it.
            raise unauthorized("The email or password is not correct.")
        services.lockout.succeeded(email, ip)
        if user.is_banned:
            raise Problem(
                falcon.HTTP_403, "Account suspended", "This account has been suspended.", slug="account-suspended"
            )
        with db.atomic():
            changes: dict[str, object] = {"last_login_at": utcnow()}
            if needs_rehash(stored):
                changes["password_hash"] = hash_password(body.password)
            User.update(**changes).where(User.id == user.id).execute()
            if (challenge := mfa_flow.login_challenge(req, user, ip)) is not None:
                resp.media = challenge  # a verified factor: no session until its code (POST /v1/auth/mfa/verify)
                return
            session, refresh = sessions.start_session(
                user, ttl=services.settings.refresh_token_ttl, user_agent=req.get_header("User-Agent"), ip=ip
            )
            audit(req, "user.login", user.id, after={"session_id": str(session.id)})
        resp.media = issue_tokens(services, user, session, refresh)


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
        services = req.context.services
        try:
            session, refresh = sessions.rotate(req.context.body.refresh_token)
        except sessions.RefreshRejected as exc:
            if exc.reused:
                services.sessions.mark_revoked([exc.session_id])
            raise unauthorized("The refresh token is invalid, used or expired; log in again.") from None
        resp.media = issue_tokens(services, session.user, session, refresh)


class Logout:
    @operation("End this session", body=LogoutRequest, status=204, errors=(401,), tags=TAGS)
    def on_post(self, req, resp):
        principal = req.context.principal
        revoked = sessions.revoke([principal.session_id], reason="logout")
        req.context.services.sessions.mark_revoked(revoked or [principal.session_id])
        resp.status = falcon.HTTP_204


class LogoutAll:
    @operation("End every session of this account", status=204, errors=(401,), tags=TAGS)
    def on_post(self, req, resp):
        principal = req.context.principal
        with db.atomic():
            revoked = sessions.revoke_all(principal.user_id, reason="logout_all")
            audit(req, "user.logout_all", principal.user_id, after={"sessions": len(revoked)})
        req.context.services.sessions.mark_revoked(revoked)
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
        email = User.normalize_email(req.context.body.email)
        # The same work for every address: one job row, one enqueue.
        Job.create(kind="accounts.send_password_reset", queue="notify", input={"email": email})
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
        services = req.context.services
        body: ResetPasswordRequest = req.context.body
        with db.atomic():
            token = AccountToken.redeem(body.token, "password_reset")
            if token is None:
                raise Problem(
                    falcon.HTTP_400,
                    "Invalid token",
                    "This reset link is invalid, used or expired.",
                    slug="invalid-token",
                )
            user = User.get_by_id(token.user_id)
            problem = policy_problem(body.password, email=user.email, full_name=user.full_name)
            if problem:  # raising rolls the redemption back: the token stays usable
                raise password_error("password", problem)
            now = utcnow()
            User.update(
                password_hash=hash_password(body.password),
                updated_at=now,
                email_verified_at=user.email_verified_at or now,
            ).where(User.id == user.id).execute()
            revoked = sessions.revoke_all(user.id, reason="password_reset")
            AccountToken.void_unused(user.id, "password_reset")  # links mailed earlier die with it
            audit(req, "user.password_reset", user.id, after={"sessions_revoked": len(revoked)})
        services.sessions.mark_revoked(revoked)
        services.sessions.store_profile(User.get_by_id(user.id))
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
                raise Problem(
                    falcon.HTTP_400,
                    "Invalid token",
                    "This unlock link is invalid, used or expired.",
                    slug="invalid-token",
                )
            user = User.get_by_id(token.user_id)
            audit(req, "user.unlock", user.id)
        services.lockout.grant(user.email, address_bucket(client_ip(req, services)))
        resp.status = falcon.HTTP_204
