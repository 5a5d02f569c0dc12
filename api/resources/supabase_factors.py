"""``/auth/v1/factors*``: supabase-js's MFA calls (``mfa.enroll``, ``challenge``, ``verify``, ``unenroll``).

The same factors, codes and rules as ``/v1/auth/mfa*`` (``api.mfa_flow``: one check of a code, good
once, counted toward the login lockout, audited and emailed); only the wire format is GoTrue's.
``mfa.listFactors`` and ``getAuthenticatorAssuranceLevel`` read the user's ``factors`` from
``GET /auth/v1/user`` and the token's ``aal``/``amr``. A session that owes its account's second
factor may challenge and verify here, nothing more (``before_mfa``). See docs/supabase-compat.md.
"""

from __future__ import annotations

import datetime
import uuid

import falcon

from api import mfa_flow
from api.audit import audit
from api.errors import Problem
from api.operation import client_ip, decode_body, operation
from api.resources.supabase_auth import TAGS, banned, rate_limited, validation_failed
from api.schemas.supabase import ChallengeFactorBody, EnrollFactorBody, VerifyFactorBody
from api.supabase_shapes import gotrue_error, session_view
from models import mfa
from models.accounts import AuthSession, User
from models.base import utcnow
from models.db import db
from models.mfa import MAX_FACTORS, MfaChallenge, MfaFactor
from services.client_address import address_bucket

# Unenrolling a verified factor needs a code proved this recently in the session (Hearth's
# "removing a factor needs a code"; supabase-js sends nothing else, so mfa.challengeAndVerify first).
RECENT_SECOND_FACTOR_SECONDS = 10 * 60
_SECOND_FACTOR_METHODS = ("totp", "recovery")
_DISABLED = {"phone": "Phone", "webauthn": "WebAuthn"}


def _factor(req, factor_id: str) -> MfaFactor:
    """The caller's own factor ``factor_id`` (another user's is not found either).

    A session that owes its account's second factor may prove only a verified one: a factor
    enrolled but never verified is not a way past the second step.
    """
    try:
        wanted = uuid.UUID(factor_id)
    except ValueError:
        raise gotrue_error(falcon.HTTP_404, "validation_failed", "factor_id must be an UUID") from None
    factor = MfaFactor.get_or_none((MfaFactor.id == wanted) & (MfaFactor.user == req.context.principal.user_id))
    if factor is None:
        raise gotrue_error(falcon.HTTP_404, "mfa_factor_not_found", "Factor not found")
    if req.context.principal.mfa_pending and not factor.verified:
        raise _insufficient_aal(falcon.HTTP_403, "Verify one of your verified factors first")
    return factor


def _user(req) -> User:
    user = User.get_by_id(req.context.principal.user_id)
    if user.is_banned:
        raise banned()
    return user


def _insufficient_aal(status: str, message: str) -> Problem:
    return gotrue_error(status, "insufficient_aal", message)


def proved_recently(session_id: str) -> bool:
    """Whether the session proved a second factor within ``RECENT_SECOND_FACTOR_SECONDS``."""
    session = AuthSession.get_by_id(session_id)
    if session.aal != "aal2":
        return False
    since = int((utcnow() - datetime.timedelta(seconds=RECENT_SECOND_FACTOR_SECONDS)).timestamp())
    return any(
        entry.get("method") in _SECOND_FACTOR_METHODS and int(entry.get("timestamp", 0)) >= since
        for entry in session.amr or []
        if isinstance(entry, dict)
    )


class Factors:
    @operation("Enroll a factor (GoTrue; TOTP only)", rate="auth", tags=TAGS, raw_body="application/json")
    def on_post(self, req, resp):
        services = req.context.services
        principal = req.context.principal
        body = decode_body(req, EnrollFactorBody, services.settings.max_body_bytes)
        if body.factor_type in _DISABLED:
            kind = _DISABLED[body.factor_type]
            raise gotrue_error(
                falcon.HTTP_422, f"mfa_{body.factor_type}_enroll_not_enabled", f"MFA enroll is disabled for {kind}"
            )
        if body.factor_type != "totp":
            raise validation_failed("factor_type needs to be totp, phone, or webauthn")
        user = _user(req)
        # As on /v1: with a verified factor already, only a session that proved one adds another.
        if principal.aal != "aal2" and mfa.has_verified_factor(user.id):
            raise _insufficient_aal(falcon.HTTP_403, "AAL2 required to enroll a new factor")
        if MfaFactor.select().where(MfaFactor.user == user.id).count() >= MAX_FACTORS:
            raise gotrue_error(
                falcon.HTTP_422,
                "too_many_enrolled_mfa_factors",
                "Maximum number of verified factors reached, unenroll to continue",
            )
        name = body.friendly_name.strip() if body.friendly_name and body.friendly_name.strip() else None
        enrolled = mfa_flow.enroll_totp(req, user, name)
        if enrolled is None:
            raise gotrue_error(
                falcon.HTTP_422,
                "mfa_factor_name_conflict",
                f"A factor with the friendly name {name!r} for this user already exists",
            )
        factor, secret = enrolled
        issuer = body.issuer.strip() if body.issuer and body.issuer.strip() else None
        uri = services.totp.uri(secret, user.email, **({"issuer": issuer} if issuer else {}))
        resp.media = {
            "id": str(factor.id),
            "type": "totp",
            "friendly_name": factor.friendly_name or "",
            # The SVG document itself: supabase-js turns it into a data: URI.
            "totp": {"qr_code": services.totp.qr_svg(uri), "secret": secret, "uri": uri},
        }

    @operation("Unenroll a factor (GoTrue)", rate="auth", tags=TAGS)
    def on_delete_item(self, req, resp, factor_id):
        principal = req.context.principal
        factor = _factor(req, factor_id)
        user = _user(req)
        if factor.verified and not proved_recently(principal.session_id):
            raise _insufficient_aal(
                falcon.HTTP_422,
                "AAL2 required to unenroll verified factor: verify a code in this session "
                f"(mfa.challengeAndVerify) within {RECENT_SECOND_FACTOR_SECONDS // 60} minutes first",
            )
        mfa_flow.remove(req, user, factor)
        resp.media = {"id": str(factor.id)}


class Challenge:
    @operation(
        "Start a challenge of a factor (GoTrue)", rate="auth", tags=TAGS, raw_body="application/json", before_mfa=True
    )
    def on_post(self, req, resp, factor_id):
        services = req.context.services
        principal = req.context.principal
        body = decode_body(req, ChallengeFactorBody, services.settings.max_body_bytes)
        if body.channel is not None:
            raise validation_failed("channel is only for phone factors")
        factor = _factor(req, factor_id)
        _user(req)
        with db.atomic():
            # Bound to this session: only its token completes it (a step-up, or a new factor's first code).
            challenge = MfaChallenge.start(
                principal.user_id,
                factor_id=factor.id,
                session_id=principal.session_id,
                ip=address_bucket(client_ip(req, services)),
            )
            audit(req, "user.mfa_challenge", principal.user_id, after={"factor_id": str(factor.id)})
        resp.media = {
            "id": str(challenge.id),
            "type": factor.factor_type,
            "expires_at": int(challenge.expires_at.timestamp()),
        }


class Verify:
    @operation(
        "Verify a challenge with a code: a session at aal2 (GoTrue)",
        rate="auth",
        tags=TAGS,
        raw_body="application/json",
        before_mfa=True,
    )
    def on_post(self, req, resp, factor_id):
        services = req.context.services
        principal = req.context.principal
        body = decode_body(req, VerifyFactorBody, services.settings.max_body_bytes)
        if not body.code:
            raise validation_failed("Code needs to be non-empty")
        factor = _factor(req, factor_id)
        challenge = self._open_challenge(principal, factor, body.challenge_id)
        user = _user(req)
        first = not factor.verified  # read before the code: its first accepted code verifies it
        try:
            mfa_flow.prove(req, user, code=body.code, factors=[factor], challenge=challenge)
        except falcon.HTTPError as exc:
            if exc.status_code == 429:
                raise rate_limited(int((getattr(exc, "extra", None) or {}).get("retry_after", 60))) from None
            raise gotrue_error(falcon.HTTP_422, "mfa_verification_failed", "Invalid TOTP code entered") from None
        with db.atomic():
            if not challenge.complete():
                raise _expired(challenge)
            if first:
                session, refresh, _ = mfa_flow.activate(req, user, factor, principal.session_id, recovery_codes=False)
            else:
                session, refresh = mfa_flow.elevate(principal.session_id, "totp")
                audit(req, "user.mfa_step_up", user.id, after={"session_id": str(session.id), "mfa": "totp"})
        resp.media = session_view(services, User.get_by_id(user.id), session, refresh, ["password", "totp"])

    @staticmethod
    def _open_challenge(principal, factor: MfaFactor, challenge_id: str | None) -> MfaChallenge:
        try:
            wanted = uuid.UUID(challenge_id or "")
        except ValueError:
            raise validation_failed("challenge_id must be an UUID") from None
        challenge = MfaChallenge.get_or_none(
            (MfaChallenge.id == wanted)
            & (MfaChallenge.factor == factor.id)
            & (MfaChallenge.session == principal.session_id)
        )
        if challenge is None:
            raise gotrue_error(
                falcon.HTTP_422, "mfa_factor_not_found", "MFA factor with the provided challenge ID not found"
            )
        if not challenge.open:
            raise _expired(challenge)
        return challenge


def _expired(challenge: MfaChallenge) -> Problem:
    return gotrue_error(
        falcon.HTTP_422,
        "mfa_challenge_expired",
        f"MFA challenge {challenge.id} has expired, verify against another challenge or create a new challenge.",
    )


def add_routes(app: falcon.App) -> None:
    factors = Factors()
    app.add_route("/auth/v1/factors", factors)
    app.add_route("/auth/v1/factors/{factor_id}", factors, suffix="item")
    app.add_route("/auth/v1/factors/{factor_id}/challenge", Challenge())
    app.add_route("/auth/v1/factors/{factor_id}/verify", Verify())
