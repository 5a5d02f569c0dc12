"""Two-factor login's shared steps: the challenge a correct password gets, and checking a second factor.

``login_challenge`` is what a login answers instead of a session when the user has a verified
factor; the ``/v1`` login calls it right after the password check (and so can any other login
flow). ``prove`` checks a TOTP code or a recovery code under the same lockout as passwords:
every wrong code counts as a failed login of the account from the caller's address, and a
challenge dies after ``CHALLENGE_MAX_ATTEMPTS`` of them. ``elevate`` raises a signed-in session to
``aal2`` and hands it a new refresh token (its earlier unused ones stop working). ``activate``,
``replace_recovery_codes`` and ``remove`` are a factor's first verification, a new set of recovery
codes and a factor's removal, each with its audit and notice email.
Both auth APIs (``/v1/auth/mfa*`` and the Supabase-compatible ``/auth/v1/factors*``) use these.
"""

from __future__ import annotations

import logging
import uuid

import falcon
from peewee import IntegrityError

from api.audit import audit
from api.errors import Problem, too_many_requests, validation_error
from api.operation import client_ip
from models import mfa, sessions
from models.accounts import AuthSession, User
from models.db import db
from models.jobs import Job
from models.mfa import CHALLENGE_TTL_SECONDS, MfaChallenge, MfaFactor
from services.client_address import address_bucket
from services.totp import SealedSecretError

log = logging.getLogger("hearth.mfa")


def factor_summary(factor: MfaFactor) -> dict:
    return {"id": str(factor.id), "factor_type": factor.factor_type, "friendly_name": factor.friendly_name}


def challenge_view(challenge: MfaChallenge, factors: list[MfaFactor]) -> dict:
    return {
        "mfa_required": True,
        "challenge_id": str(challenge.id),
        "factors": [factor_summary(factor) for factor in factors],
        "expires_in": CHALLENGE_TTL_SECONDS,
    }


def login_challenge(req, user: User, ip: str | None) -> dict | None:
    """The answer to a correct password when ``user`` has a verified factor (no session yet); else None."""
    factors = mfa.verified_factors(user.id)
    if not factors:
        return None
    return challenge_view(MfaChallenge.start(user.id, ip=ip), factors)


def invalid_challenge() -> Problem:
    return Problem(
        falcon.HTTP_400,
        "Invalid challenge",
        "This challenge is unknown, expired, already used or out of attempts; start again.",
        slug="invalid-challenge",
    )


def invalid_code(field: str) -> Problem:
    return validation_error(
        [{"field": f"body.{field}", "message": "is not correct, or was used already"}],
        detail="The code is not correct.",
    )


def prove(
    req,
    user: User,
    *,
    code: str | None = None,
    recovery_code: str | None = None,
    factors: list[MfaFactor] | None = None,
    challenge: MfaChallenge | None = None,
) -> str:
    """Check a second factor of ``user``; returns how it was proved (``totp`` or ``recovery``).

    ``code`` is checked against ``factors`` (default: the user's verified factors) and is good once:
    the step it belongs to is claimed. Raises 429 while the account is locked for this address,
    and 422 ``validation`` naming the field for a wrong, replayed or missing code (counted toward
    the lockout and ``challenge``'s attempts). Call it outside a transaction that the failure
    rolls back: the count must stay.
    """
    services = req.context.services
    ip = address_bucket(client_ip(req, services))
    locked = services.lockout.locked_for(user.email, ip)
    if locked:
        raise too_many_requests(locked, "Too many failed attempts; try again later.")
    if (code is None) == (recovery_code is None):
        raise validation_error([{"field": "body.code", "message": "give either code or recovery_code"}])
    method = None
    if code is not None:
        for factor in mfa.verified_factors(user.id) if factors is None else factors:
            try:
                secret = services.totp.open(factor.secret_sealed, factor.id)
            except SealedSecretError:  # sealed under another SECRET_KEY: only a recovery code helps
                log.warning("a two-factor secret does not open", extra={"factor": str(factor.id)})
                continue
            step = services.totp.matching_step(secret, code, after=factor.last_used_step)
            if step is not None and factor.claim_step(step):
                method = "totp"
                break
    elif recovery_code is not None and mfa.redeem_recovery_code(user.id, recovery_code):
        method = "recovery"
    if method is None:
        if challenge is not None:
            challenge.count_failure()
        if services.lockout.failed(user.email, ip).mail_unlock_link:
            Job.create(kind="accounts.send_unlock_link", queue="notify", input={"email": user.email})
        raise invalid_code("code" if code is not None else "recovery_code")
    services.lockout.succeeded(user.email, ip)
    return method


def elevate(session_id, method: str) -> tuple[AuthSession, str]:
    """Raise the session to aal2 (proved by ``method``); returns it reloaded and its new refresh token."""
    mfa.raise_session(session_id, method)
    return sessions.replace_refresh_token(session_id)


def notify(user_id, change: str) -> Job:
    """Mail the user that their two-factor login changed (``change``: see ``tasks.accounts.MFA_CHANGES``)."""
    return Job.create(
        kind="accounts.send_mfa_notice",
        queue="notify",
        owner=user_id,
        input={"user_id": str(user_id), "change": change},
    )


def enroll_totp(req, user: User, name: str | None) -> tuple[MfaFactor, str] | None:
    """A new unverified TOTP factor of ``user`` named ``name`` and its secret; None when the name is taken.

    The caller decides first whether the session may enroll (aal2 once a factor is verified) and
    shows the secret once, in its answer.
    """
    totp = req.context.services.totp
    factor_id = uuid.uuid4()
    secret = totp.new_secret()
    try:
        with db.atomic():
            factor = MfaFactor.create(
                id=factor_id, user=user.id, friendly_name=name, secret_sealed=totp.seal(secret, factor_id)
            )
            audit(req, "user.mfa_enroll", user.id, after={"factor_id": str(factor_id), "friendly_name": name})
    except IntegrityError:  # the unique index on (user, friendly_name)
        return None
    return factor, secret


def activate(req, user: User, factor: MfaFactor, session_id, *, recovery_codes: bool) -> tuple[AuthSession, str, list]:
    """After ``prove`` accepted the first code of ``factor``: the session becomes aal2 (returned with its new
    refresh token), the account's other password-only sessions end, and the owner is emailed.

    With ``recovery_codes``, the first verified factor brings ten recovery codes (returned: shown once).
    """
    with db.atomic():
        codes = [] if not recovery_codes or mfa.recovery_codes_left(user.id) else mfa.issue_recovery_codes(user.id)
        others = AuthSession.select(AuthSession.id).where(
            (AuthSession.user == user.id) & (AuthSession.aal == "aal1") & AuthSession.revoked_at.is_null()
        )
        revoked = sessions.revoke([row.id for row in others if str(row.id) != str(session_id)], reason="mfa_enabled")
        session, refresh = elevate(session_id, "totp")
        audit(req, "user.mfa_activate", user.id, after={"factor_id": str(factor.id), "sessions_revoked": len(revoked)})
        notify(user.id, "enabled")
    req.context.services.sessions.mark_revoked(revoked)
    return session, refresh, codes


def replace_recovery_codes(req, user: User) -> list[str]:
    """After ``prove``: ten new recovery codes (returned: shown once), the earlier ones void; audited, owner emailed."""
    with db.atomic():
        codes = mfa.issue_recovery_codes(user.id)
        audit(req, "user.mfa_recovery_codes", user.id, after={"count": len(codes)})
        notify(user.id, "recovery_codes")
    return codes


def remove(req, user: User, factor: MfaFactor) -> bool:
    """Delete ``factor`` (its removal already authorised); returns whether two-factor login is now off.

    Once no verified factor is left the recovery codes go and the account's sessions are aal1 again.
    The owner is emailed when a verified factor goes.
    """
    with db.atomic():
        factor.delete_instance()
        last = not mfa.has_verified_factor(user.id)
        if last:
            mfa.turn_off(user.id)
        audit(req, "user.mfa_remove", user.id, after={"factor_id": str(factor.id), "mfa_off": last})
        if factor.verified:
            notify(user.id, "disabled" if last else "factor_removed")
    return last
