"""``/v1/auth/mfa*``: two-factor login with an authenticator app (TOTP, RFC 6238) and recovery codes.

Enroll (a secret, its otpauth:// URI and QR code, shown once) → activate with a first code (ten
recovery codes, shown once; the session becomes aal2) → from then on a login answers a challenge
that ``POST /v1/auth/mfa/verify`` completes with a code or a recovery code. A signed-in aal1 session
steps up the same way (``POST /v1/auth/mfa/challenge``). docs/auth.md tells the whole story.
"""

from __future__ import annotations

import uuid

import falcon

from api import mfa_flow
from api.audit import audit
from api.auth import mfa_required
from api.errors import Problem, conflict, not_found, validation_error
from api.operation import client_ip, operation
from api.resources.auth import issue_tokens
from api.schemas.accounts import TokenPair
from api.schemas.mfa import (
    ActivatedFactor,
    ChallengeRequest,
    CodeRequest,
    EnrollTotpRequest,
    FactorList,
    MfaChallengeView,
    RecoveryCodes,
    RemoveFactorRequest,
    TotpEnrollment,
    VerifyRequest,
)
from models import mfa, sessions
from models.accounts import User
from models.db import db
from models.mfa import MAX_FACTORS, MfaChallenge, MfaFactor
from models.passwords import verify_password
from services.client_address import address_bucket

TAGS = ("auth",)


def _own_factor(principal, factor_id) -> MfaFactor:
    factor = MfaFactor.get_or_none((MfaFactor.id == factor_id) & (MfaFactor.user == principal.user_id))
    if factor is None:
        raise not_found("factor")
    return factor


def _not_enrolled() -> Problem:
    return conflict("Enroll and activate an authenticator app first.", slug="mfa-not-enrolled")


class Factors:
    @operation(
        "My two-factor login: factors and recovery codes left",
        response=FactorList,
        permission="profile:read",
        tags=TAGS,
    )
    def on_get(self, req, resp):
        principal = req.context.principal
        resp.media = {
            "factors": [factor.view() for factor in mfa.factors_of(principal.user_id)],
            "recovery_codes_left": mfa.recovery_codes_left(principal.user_id),
            "aal": principal.aal,
        }

    @operation(
        "Remove a factor (needs the password and a code)",
        body=RemoveFactorRequest,
        status=204,
        permission="profile:write",
        rate="auth",
        errors=(404, 422, 429),
        tags=TAGS,
        description="The code comes from a verified factor (from the factor itself while none is verified). "
        "Once no verified factor is left, the recovery codes are deleted and the account's sessions are aal1 "
        "again. The owner is emailed.",
    )
    def on_delete_item(self, req, resp, factor_id):
        services = req.context.services
        principal = req.context.principal
        body: RemoveFactorRequest = req.context.body
        factor = _own_factor(principal, factor_id)
        user = User.get_by_id(principal.user_id)
        if not verify_password(user.password_hash, body.password):
            services.lockout.failed(user.email, address_bucket(client_ip(req, services)))
            raise validation_error([{"field": "body.password", "message": "is not correct"}])
        verified = mfa.verified_factors(user.id)
        mfa_flow.prove(req, user, code=body.code, factors=verified or [factor])
        mfa_flow.remove(req, user, factor)
        resp.status = falcon.HTTP_204


class EnrollTotp:
    @operation(
        "Enroll an authenticator app (TOTP)",
        body=EnrollTotpRequest,
        response=TotpEnrollment,
        status=201,
        permission="profile:write",
        rate="auth",
        errors=(403, 409),
        tags=TAGS,
        description="Answers the secret, its `otpauth://` URI (issuer Hearth, your email) and the URI as an "
        "SVG QR code: the only time the secret is shown. The factor is `unverified` until activated "
        "with a first code. With a verified factor already, the session must be aal2.",
    )
    def on_post(self, req, resp):
        services = req.context.services
        principal = req.context.principal
        body: EnrollTotpRequest = req.context.body
        if principal.aal != "aal2" and mfa.has_verified_factor(principal.user_id):
            raise mfa_required(principal.user_id)
        if MfaFactor.select().where(MfaFactor.user == principal.user_id).count() >= MAX_FACTORS:
            raise conflict(f"At most {MAX_FACTORS} factors; remove one first.", slug="too-many-factors")
        user = User.get_by_id(principal.user_id)
        enrolled = mfa_flow.enroll_totp(req, user, body.friendly_name.strip() if body.friendly_name else None)
        if enrolled is None:
            raise conflict("You already have a factor with this name.", slug="factor-name-taken")
        factor, secret = enrolled
        uri = services.totp.uri(secret, user.email)
        resp.status = falcon.HTTP_201
        resp.location = "/v1/auth/mfa"
        resp.media = {**factor.view(), "secret": secret, "uri": uri, "qr_code": services.totp.qr_svg(uri)}


class ActivateFactor:
    @operation(
        "Activate an enrolled factor with its first code",
        body=CodeRequest,
        response=ActivatedFactor,
        permission="profile:write",
        rate="auth",
        errors=(404, 409, 422, 429),
        tags=TAGS,
        description="The first correct code verifies the factor. The first verified factor brings ten "
        "single-use recovery codes, shown only in this answer. This session becomes aal2 (new tokens in "
        "`tokens`), the account's other password-only sessions end, and the owner is emailed.",
    )
    def on_post(self, req, resp, factor_id):
        services = req.context.services
        principal = req.context.principal
        factor = _own_factor(principal, factor_id)
        if factor.verified:
            raise conflict("This factor is already active.", slug="already-verified")
        user = User.get_by_id(principal.user_id)
        mfa_flow.prove(req, user, code=req.context.body.code, factors=[factor])
        session, refresh, codes = mfa_flow.activate(req, user, factor, principal.session_id, recovery_codes=True)
        resp.media = {
            "factor": MfaFactor.get_by_id(factor.id).view(),
            "recovery_codes": codes,
            "tokens": issue_tokens(services, user, session, refresh),
        }


class RegenerateRecoveryCodes:
    @operation(
        "Replace my recovery codes (needs a code)",
        body=CodeRequest,
        response=RecoveryCodes,
        permission="profile:write",
        rate="auth",
        errors=(409, 422, 429),
        tags=TAGS,
        description="Ten new single-use codes, shown only in this answer; the earlier ones stop working.",
    )
    def on_post(self, req, resp):
        principal = req.context.principal
        user = User.get_by_id(principal.user_id)
        if not mfa.has_verified_factor(user.id):
            raise _not_enrolled()
        mfa_flow.prove(req, user, code=req.context.body.code)
        resp.media = {"recovery_codes": mfa_flow.replace_recovery_codes(req, user)}


class StepUp:
    @operation(
        "Start a step-up of this session to aal2",
        body=ChallengeRequest,
        response=MfaChallengeView,
        status=201,
        rate="auth",
        errors=(404, 409),
        tags=TAGS,
        before_mfa=True,
        description="For a signed-in session that proved only a password: answers a challenge that "
        "`POST /v1/auth/mfa/verify` completes (with this session's token) to raise the session to aal2.",
    )
    def on_post(self, req, resp):
        principal = req.context.principal
        factor_id = req.context.body.factor_id
        factors = mfa.verified_factors(principal.user_id)
        if not factors:
            raise _not_enrolled()
        if factor_id is not None:
            factors = [factor for factor in factors if str(factor.id) == factor_id.lower()]
            if not factors:
                raise not_found("factor")
        challenge = MfaChallenge.start(
            principal.user_id,
            factor_id=factors[0].id if factor_id else None,
            session_id=principal.session_id,
            ip=address_bucket(client_ip(req, req.context.services)),
        )
        resp.status = falcon.HTTP_201
        resp.location = "/v1/auth/mfa"
        resp.media = mfa_flow.challenge_view(challenge, factors)


class Verify:
    @operation(
        "Complete a login or a step-up with a code or a recovery code",
        body=VerifyRequest,
        response=TokenPair,
        auth="optional",
        rate="auth",
        errors=(400, 403, 422, 429),
        tags=TAGS,
        before_mfa=True,
        description="`challenge_id` from the login's answer (no token needed) or from "
        "`POST /v1/auth/mfa/challenge` (with that session's token), and either `code` (six digits from the "
        "app, good once) or `recovery_code` (single use; the owner is emailed). Answers tokens at aal2. "
        "Wrong codes count toward the login lockout (429), and a challenge allows five.",
    )
    def on_post(self, req, resp):
        services = req.context.services
        body: VerifyRequest = req.context.body
        principal = req.context.principal
        try:
            challenge_id = uuid.UUID(body.challenge_id)
        except ValueError:
            raise mfa_flow.invalid_challenge() from None
        challenge = MfaChallenge.get_or_none(MfaChallenge.id == challenge_id)
        if challenge is None or not challenge.open:
            raise mfa_flow.invalid_challenge()
        if challenge.session_id is not None and (
            principal is None or principal.session_id != str(challenge.session_id)
        ):
            raise mfa_flow.invalid_challenge()  # a step-up belongs to the session that started it
        user = User.get_by_id(challenge.user_id)
        if user.is_banned:
            raise Problem(
                falcon.HTTP_403, "Account suspended", "This account has been suspended.", slug="account-suspended"
            )
        factors = [f for f in mfa.verified_factors(user.id) if challenge.factor_id in (None, f.id)]
        method = mfa_flow.prove(
            req, user, code=body.code, recovery_code=body.recovery_code, factors=factors, challenge=challenge
        )
        with db.atomic():
            if not challenge.complete():
                raise mfa_flow.invalid_challenge()
            if challenge.session_id is None:
                session, refresh = sessions.start_session(
                    user,
                    ttl=services.settings.refresh_token_ttl,
                    user_agent=req.get_header("User-Agent"),
                    ip=address_bucket(client_ip(req, services)),
                    aal="aal2",
                    methods=("password", method),
                )
                audit(req, "user.login", user.id, after={"session_id": str(session.id), "aal": "aal2", "mfa": method})
            else:
                session, refresh = mfa_flow.elevate(challenge.session_id, method)
                audit(req, "user.mfa_step_up", user.id, after={"session_id": str(session.id), "mfa": method})
            if method == "recovery":
                audit(req, "user.mfa_recovery_code_used", user.id, after={"left": mfa.recovery_codes_left(user.id)})
                mfa_flow.notify(user.id, "recovery_code_used")
        resp.media = issue_tokens(services, user, session, refresh)


def add_routes(app: falcon.App) -> None:
    factors = Factors()
    app.add_route("/v1/auth/mfa", factors)
    app.add_route("/v1/auth/mfa/{factor_id:uuid}", factors, suffix="item")
    app.add_route("/v1/auth/mfa/totp", EnrollTotp())
    app.add_route("/v1/auth/mfa/{factor_id:uuid}/activate", ActivateFactor())
    app.add_route("/v1/auth/mfa/recovery-codes", RegenerateRecoveryCodes())
    app.add_route("/v1/auth/mfa/challenge", StepUp())
    app.add_route("/v1/auth/mfa/verify", Verify())
