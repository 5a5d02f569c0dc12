"""The account flows behind both auth APIs: ``/v1/auth`` and the Supabase-compatible ``/auth/v1``.

Each flow does the work (lockout, hashing, sessions, tokens, audit, mail jobs)
and ends in a value or one of the ``Outcome`` exceptions below; each API turns
those into its own wire format. There is one copy of login, refresh, lockout,
registration and password reset: the resources only translate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import falcon
from peewee import IntegrityError

from api import mfa_flow
from api.audit import audit
from api.operation import client_ip
from models import sessions
from models.accounts import AccountToken, AuthSession, User
from models.base import utcnow
from models.db import db
from models.jobs import Job
from models.passwords import hash_password, needs_rehash, policy_problem, verify_password
from services.client_address import address_bucket


class Outcome(Exception):
    """A flow ended without its result; each API maps the subclass to its own error."""


class InvalidCredentials(Outcome):
    """Unknown email, wrong password, or an address not verified yet: one answer for all three."""


class LockedOut(Outcome):
    def __init__(self, retry_after: int):
        super().__init__("locked out")
        self.retry_after = retry_after


class Banned(Outcome):
    """The password was right, but the account is suspended."""


class RefreshFailed(Outcome):
    """The refresh token is unknown, used, or its session ended; ``reused``: that replay ended the session."""

    def __init__(self, reason: str, *, reused: bool):
        super().__init__(reason)
        self.reused = reused


class WeakPassword(Outcome):
    """The password policy refused it; ``problem`` says why ("is too short", ...)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


class BadMailedToken(Outcome):
    """A mailed token (verification, reset) that is unknown, used or expired."""


@dataclass
class SignedIn:
    """A new or refreshed session: the raw refresh token exists only here and in the client's hands."""

    user: User
    session: AuthSession
    refresh_token: str
    # How the session was authenticated, GoTrue's ``amr`` methods ("password", "otp", "recovery").
    methods: list[str] = field(default_factory=lambda: ["password"])


@dataclass
class SecondFactorRequired:
    """The password was right and the account asks for a second factor: no session yet.

    ``challenge`` is the challenge to complete (``api.mfa_flow.challenge_view``'s shape).
    """

    user: User
    challenge: dict


def _ip(req: falcon.Request) -> str:
    return address_bucket(client_ip(req, req.context.services))


def queue_verification(user: User, *, compat_redirect: str | None = None) -> Job:
    """Queue the verification email; ``compat_redirect`` (an allowed URL) adds the ``/auth/v1/verify`` link."""
    payload = {"user_id": str(user.id)}
    if compat_redirect is not None:
        payload["compat_redirect"] = compat_redirect
    return Job.create(kind="accounts.send_verification_email", queue="notify", owner=user.id, input=payload)


def register(
    req: falcon.Request,
    *,
    email: str,
    password: str,
    full_name: str,
    role: str,
    metadata: dict | None = None,
    compat_redirect: str | None = None,
) -> User | None:
    """Create an unverified account and queue its verification email; ``None`` when the address is taken.

    A taken address gets the same work and the same answer from the API (its owner
    is mailed a notice instead), so the caller must not tell the two apart.
    Raises ``WeakPassword``.
    """
    email = User.normalize_email(email)
    problem = policy_problem(password, email=email, full_name=full_name)
    if problem:
        raise WeakPassword(problem)
    # Hashed whether or not the address is taken: the hash is most of the request's time.
    password_hash = hash_password(password)
    try:
        with db.atomic():
            user = User.create(
                email=email,
                password_hash=password_hash,
                full_name=full_name.strip(),
                role=role,
                user_metadata=metadata or {},
            )
            queue_verification(user, compat_redirect=compat_redirect)
            audit(req, "user.register", user.id, after={"email": email, "role": role})
        return user
    except IntegrityError as exc:  # the unique index on email decides, even under concurrent sign-ups
        if "users_email_key" not in str(exc):
            raise
    with db.atomic():
        owner = User.get_or_none(User.email == email)
        Job.create(kind="accounts.send_signup_notice", queue="notify", input={"email": email})
        if owner is not None:  # None only if the account was deleted since the insert failed
            audit(req, "user.register_taken", owner.id)
    return None


def check_password(req: falcon.Request, email: str, password: str) -> User:
    """The first login step: lockout, the password, verification, ban. Returns the user it proved.

    Raises ``LockedOut``, ``InvalidCredentials`` or ``Banned``.
    """
    services = req.context.services
    email = User.normalize_email(email)
    ip = _ip(req)
    locked = services.lockout.locked_for(email, ip)
    if locked:
        raise LockedOut(locked)
    user = User.get_or_none(User.email == email)
    stored = user.password_hash if user else None
    # Checked first and always: an unknown address takes as long as a wrong password (and fails).
    if not verify_password(stored, password) or user is None or stored is None:
        if services.lockout.failed(email, ip).mail_unlock_link:
            # Queued whether or not the email has an account, like a password reset: the worker decides.
            Job.create(kind="accounts.send_unlock_link", queue="notify", input={"email": email})
        raise InvalidCredentials()
    if user.email_verified_at is None:
        # Registration answers a taken address like a new one; were an unverified account able
        # to log in, or told apart from a wrong password, registering with any password and then
        # logging in with it would tell whether the address was free. So it answers exactly like
        # a wrong password; the mailed link, or a password reset, verifies it.
        raise InvalidCredentials()
    services.lockout.succeeded(email, ip)
    if user.is_banned:
        raise Banned()
    if needs_rehash(stored):
        User.update(password_hash=hash_password(password)).where(User.id == user.id).execute()
    return user


def second_factor_step(req: falcon.Request, user: User) -> SecondFactorRequired | None:
    """Where login demands a second factor: a challenge instead of a session, or ``None`` to go on.

    An account with a verified factor gets a challenge (``POST /v1/auth/mfa/verify`` completes it).
    """
    challenge = mfa_flow.login_challenge(req, user, _ip(req))
    return None if challenge is None else SecondFactorRequired(user, challenge)


def start_session(req: falcon.Request, user: User, *, event: str = "user.login", methods=("password",)) -> SignedIn:
    """Open a session for ``user`` (the proof of who they are is the caller's) and audit it."""
    services = req.context.services
    with db.atomic():
        User.update(last_login_at=utcnow()).where(User.id == user.id).execute()
        session, refresh = sessions.start_session(
            user,
            ttl=services.settings.refresh_token_ttl,
            user_agent=req.get_header("User-Agent"),
            ip=_ip(req),
            methods=tuple(methods),
        )
        audit(req, event, user.id, after={"session_id": str(session.id)})
    return SignedIn(User.get_by_id(user.id), session, refresh, list(methods))


def login(req: falcon.Request, email: str, password: str) -> SignedIn | SecondFactorRequired:
    """Log in with email and password: a session, or the second factor it still needs.

    Raises ``LockedOut``, ``InvalidCredentials`` or ``Banned``.
    """
    user = check_password(req, email, password)
    pending = second_factor_step(req, user)
    if pending is not None:
        return pending
    return start_session(req, user)


def password_session(req: falcon.Request, email: str, password: str) -> SignedIn:
    """Log in with email and password straight to a session, at aal1 even when the account has a factor.

    For the Supabase-compatible API, whose clients raise the session to aal2 afterwards
    (``mfa.challenge`` + ``mfa.verify``). Until they do, the session's tokens carry
    ``mfa_pending`` and open nothing but that (``api.auth``). Raises as ``login`` does.
    """
    return start_session(req, check_password(req, email, password))


def refresh(req: falcon.Request, raw: str) -> SignedIn:
    """Rotate a refresh token (single use); a replayed one ends its whole session. Raises ``RefreshFailed``."""
    try:
        session, fresh = sessions.rotate(raw)
    except sessions.RefreshRejected as exc:
        if exc.reused:
            req.context.services.sessions.mark_revoked([exc.session_id])
        raise RefreshFailed(str(exc), reused=exc.reused) from None
    return SignedIn(session.user, session, fresh)


def logout(req: falcon.Request, scope: str = "local") -> list:
    """End sessions of the caller: ``local`` (this one), ``global`` (all), ``others`` (all but this one)."""
    principal = req.context.principal
    if scope == "local":
        revoked = sessions.revoke([principal.session_id], reason="logout")
        revoked = revoked or [principal.session_id]
    else:
        keep = principal.session_id if scope == "others" else None
        with db.atomic():
            revoked = sessions.revoke_all(principal.user_id, reason=f"logout_{scope}", except_session=keep)
            audit(
                req,
                f"user.logout_{'all' if scope == 'global' else scope}",
                principal.user_id,
                after={"sessions": len(revoked)},
            )
    req.context.services.sessions.mark_revoked(revoked)
    return revoked


def request_password_reset(email: str, *, compat_redirect: str | None = None) -> Job:
    """Queue the reset email; the same work for every address (the worker decides whether to send).

    ``compat_redirect`` (an allowed URL, no secret) makes the mail's link the
    Supabase-style ``/auth/v1/verify`` one, which lands there signed in.
    """
    payload = {"email": User.normalize_email(email)}
    if compat_redirect is not None:
        payload["compat_redirect"] = compat_redirect
    return Job.create(kind="accounts.send_password_reset", queue="notify", input=payload)


def reset_password(req: falcon.Request, token: str, password: str) -> User:
    """Redeem a mailed reset token and set the password; every session of the account ends.

    Raises ``BadMailedToken`` or ``WeakPassword`` (the token then stays usable).
    """
    with db.atomic():
        row = AccountToken.redeem(token, "password_reset")
        if row is None:
            raise BadMailedToken()
        user = User.get_by_id(row.user_id)
        problem = policy_problem(password, email=user.email, full_name=user.full_name)
        if problem:  # raising rolls the redemption back: the token stays usable
            raise WeakPassword(problem)
        set_password(req, user, password, reason="password_reset", keep_session=None)
    return User.get_by_id(user.id)


def set_password(req: falcon.Request, user: User, password: str, *, reason: str, keep_session) -> list:
    """Store a new password (already checked against the policy), end the other sessions, void reset links.

    Setting a password proves the address too (it was reached by a mailed link or a session).
    """
    services = req.context.services
    now = utcnow()
    with db.atomic():
        User.update(
            password_hash=hash_password(password), updated_at=now, email_verified_at=user.email_verified_at or now
        ).where(User.id == user.id).execute()
        revoked = sessions.revoke_all(user.id, reason=reason, except_session=keep_session)
        AccountToken.void_unused(user.id, "password_reset")  # links mailed earlier die with it
        audit(req, f"user.{reason}", user.id, after={"sessions_revoked": len(revoked)})
    services.sessions.mark_revoked(revoked)
    services.sessions.store_profile(User.get_by_id(user.id))
    return revoked


def _redeem(token: str, purpose: str, email: str | None) -> AccountToken:
    """Redeem inside the caller's transaction; with ``email``, only a token mailed to that address counts."""
    row = AccountToken.redeem(token, purpose)
    if row is None:
        raise BadMailedToken()
    if email is not None and User.get_by_id(row.user_id).email != User.normalize_email(email):
        raise BadMailedToken()  # raised inside the transaction: the redemption rolls back
    return row


def verify_email(req: falcon.Request, token: str, *, email: str | None = None) -> User:
    """Redeem a mailed verification token and mark the address verified. Raises ``BadMailedToken``."""
    with db.atomic():
        row = _redeem(token, "verify_email", email)
        User.update(email_verified_at=utcnow(), updated_at=utcnow()).where(
            (User.id == row.user_id) & User.email_verified_at.is_null()
        ).execute()
        audit(req, "user.verify_email", row.user_id)
    user = User.get_by_id(row.user_id)
    req.context.services.sessions.store_profile(user)
    return user


def recover_session(req: falcon.Request, token: str, *, email: str | None = None) -> SignedIn:
    """Redeem a mailed reset token for a session instead of a new password (GoTrue's recovery login).

    The address is proved by the mail, so it counts as verified. The caller then
    sets the password with the session. Raises ``BadMailedToken`` or ``Banned``.
    """
    with db.atomic():
        row = _redeem(token, "password_reset", email)
        user = User.get_by_id(row.user_id)
        if user.is_banned:
            raise Banned()
        if user.email_verified_at is None:
            User.update(email_verified_at=utcnow()).where(User.id == user.id).execute()
        signed_in = start_session(req, user, event="user.recovery_login", methods=("recovery",))
    req.context.services.sessions.store_profile(signed_in.user)
    return signed_in
