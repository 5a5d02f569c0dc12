"""Who is calling: bearer-token authentication of HTTP requests.

The access token proves identity (``services.tokens``); the session cache
(``models.session_cache``) says whether that session is still alive and what
the user's current role is. Both answers become a ``Principal``, or a 401.
"""

from __future__ import annotations

from dataclasses import dataclass

import falcon

from api.errors import forbidden, unauthorized
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

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can(self, permission: str) -> bool:
        return has_permission(self.role, permission)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise forbidden()


class Authenticator:
    def __init__(self, tokens: TokenIssuer, sessions: SessionCache):
        self.tokens = tokens
        self.sessions = sessions

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
        return Principal(
            user_id=claims.user_id,
            role=state.decode(),
            session_id=claims.session_id,
            token_expires_at=claims.expires_at,
        )
