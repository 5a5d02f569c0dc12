"""Who is calling: bearer-token authentication of HTTP requests.

The access token proves identity (``services.tokens``); the session cache
(``models.session_cache``) says whether that session is still alive and what
the user's current role is. Both answers become a ``Principal``, or a 401.

A user whose role is one of ``MFA_REQUIRED_ROLES`` holds that role's own powers
(the ``admin:*`` permissions, ``is_admin``) only in a session that proved a
second factor (``aal2``); below it they act as a user of no special role, and
an operation that needs such a permission answers 403 ``mfa-required``.

A session that proved only a password while its account has two-factor login on
(``Principal.mfa_pending``: the Supabase-compatible API's aal1 sign-in) may use
only the operations declared ``before_mfa=True`` (completing the second factor,
reading the user, signing out); everything else answers 403 ``mfa-required``
(GoTrue's ``insufficient_aal`` on ``/auth/v1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import falcon

from api.errors import Problem, forbidden, unauthorized
from models.mfa import has_verified_factor
from models.permissions import has_permission
from models.session_cache import REVOKED, SessionCache
from services.tokens import Claims, InvalidToken, TokenIssuer


def _tagged(problem, code: str, status: int):
    """``problem`` as /v1 answers it, carrying what GoTrue would answer instead (for ``/auth/v1``)."""
    problem.gotrue_code, problem.gotrue_status = code, status
    return problem


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str
    session_id: str
    token_expires_at: int
    aal: str = "aal1"
    # The role demands a second factor (MFA_REQUIRED_ROLES) and this session has not proved one.
    needs_mfa: bool = False
    # The account has a verified factor and this session has not proved it yet (see the module doc).
    mfa_pending: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and not self.needs_mfa

    def can(self, permission: str) -> bool:
        if self.needs_mfa and permission.startswith("admin:"):
            return False
        return has_permission(self.role, permission)

    def require(self, permission: str) -> None:
        if self.needs_mfa and permission.startswith("admin:") and has_permission(self.role, permission):
            raise mfa_required(self.user_id)
        if not self.can(permission):
            raise forbidden()


def mfa_required(user_id: str) -> Problem:
    """403 ``mfa-required``: the role's powers need a session that proved a second factor."""
    if has_verified_factor(user_id):
        detail = (
            "Your role requires two-factor login: verify a code from your authenticator app "
            "(POST /v1/auth/mfa/challenge, then POST /v1/auth/mfa/verify) to use this."
        )
    else:
        detail = (
            "Your role requires two-factor login: enroll an authenticator app (POST /v1/auth/mfa/totp, "
            "then activate it), then log in again or verify a code to use this."
        )
    return Problem(falcon.HTTP_403, "Two-factor login required", detail, slug="mfa-required")


def second_factor_pending() -> Problem:
    """403 ``mfa-required`` for a session that owes its account's second factor (``insufficient_aal``)."""
    problem = Problem(
        falcon.HTTP_403,
        "Two-factor login required",
        "This session has proved only a password and the account has two-factor login on: verify a code "
        "from your authenticator app first (POST /v1/auth/mfa/challenge, then POST /v1/auth/mfa/verify; "
        "or supabase-js mfa.challenge and mfa.verify).",
        slug="mfa-required",
    )
    _tagged(problem, "insufficient_aal", 403)
    return problem


class Authenticator:
    def __init__(self, tokens: TokenIssuer, sessions: SessionCache, *, mfa_roles: tuple[str, ...] = ()):
        self.tokens = tokens
        self.sessions = sessions
        self.mfa_roles = frozenset(mfa_roles)

    @staticmethod
    def bearer(req: falcon.Request) -> str | None:
        header = req.get_header("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _tagged(unauthorized("The Authorization header must be 'Bearer <access token>'."), "bad_jwt", 403)
        return token.strip()

    def verify(self, token: str) -> Claims:
        """Check the token itself (no I/O); 401 when it is not one to honour."""
        try:
            return self.tokens.verify(token)
        except InvalidToken:
            raise _tagged(unauthorized("The access token is invalid or expired."), "bad_jwt", 403) from None

    def keys(self, claims: Claims, prefetch=None) -> list[str]:
        """The Redis keys a request reads for ``claims``: session state first, then ``prefetch``'s."""
        extra = prefetch(self.sessions, claims.user_id) if prefetch else ()
        return [self.sessions.key(claims.session_id), *extra]

    def principal(self, claims: Claims, state: bytes | None) -> Principal:
        """The caller, given the cached session state read with ``keys`` (rebuilt on a miss)."""
        if state is None:
            state = self.sessions.load(claims.session_id)
        if state == REVOKED:
            raise _tagged(unauthorized("This session has ended; log in again."), "session_not_found", 403)
        role = state.decode()
        return Principal(
            user_id=claims.user_id,
            role=role,
            session_id=claims.session_id,
            token_expires_at=claims.expires_at,
            aal=claims.aal,
            needs_mfa=role in self.mfa_roles and claims.aal != "aal2",
            mfa_pending=claims.mfa_pending,
        )
