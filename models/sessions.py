"""Login sessions and their rotating refresh tokens.

A session is one login. Each refresh consumes the presented refresh token and
issues a new one; presenting a token that was already consumed means it was
stolen (or replayed), so the whole session — every token descended from that
login — is revoked.
"""

from __future__ import annotations

from models.accounts import AuthSession, RefreshToken, expires_in, new_token, token_hash
from models.base import utcnow
from models.db import db


class RefreshRejected(Exception):
    """The refresh token cannot be used; ``reused`` says whether that revoked its session."""

    def __init__(self, reason: str, *, reused: bool = False, session_id=None):
        super().__init__(reason)
        self.reused = reused
        self.session_id = session_id


def start_session(
    user,
    *,
    ttl: int,
    user_agent: str | None,
    ip: str | None,
    aal: str = "aal1",
    methods: tuple[str, ...] = ("password",),
) -> tuple[AuthSession, str]:
    """Create a session for ``user``; returns it and its first raw refresh token.

    ``aal`` and ``methods`` say how the login was proved (``aal2``: a second factor too).
    """
    now = int(utcnow().timestamp())
    with db.atomic():
        session = AuthSession.create(
            user=user.id,
            expires_at=expires_in(ttl),
            user_agent=(user_agent or "")[:300] or None,
            ip=ip,
            aal=aal,
            amr=[{"method": method, "timestamp": now} for method in methods],
        )
        raw = new_token()
        RefreshToken.create(token_hash=token_hash(raw), session=session.id)
    return session, raw


def rotate(raw: str) -> tuple[AuthSession, str]:
    """Consume ``raw`` and return the session with a fresh refresh token.

    Raises ``RefreshRejected`` for unknown, reused, revoked or expired tokens.
    """
    digest = token_hash(raw)
    now = utcnow()
    with db.atomic():
        consumed = list(
            RefreshToken.update(used_at=now)
            .where((RefreshToken.token_hash == digest) & RefreshToken.used_at.is_null())
            .returning(RefreshToken.session)
            .execute()
        )
        if consumed:
            session = AuthSession.get_by_id(consumed[0].session_id)
            if session.active and not session.user.is_banned:
                AuthSession.update(last_used_at=now).where(AuthSession.id == session.id).execute()
                fresh = new_token()
                RefreshToken.create(token_hash=token_hash(fresh), session=session.id)
                return session, fresh
    # Rejections are decided outside the transaction above, so the revocation
    # of a replayed token's family commits even though the request fails.
    if consumed:
        raise RefreshRejected("session ended")
    known = RefreshToken.get_or_none(RefreshToken.token_hash == digest)
    if known is None:
        raise RefreshRejected("unknown refresh token")
    revoke([known.session_id], reason="refresh_token_reuse")
    raise RefreshRejected("refresh token reused", reused=True, session_id=known.session_id)


def session_for_refresh_token(raw: str) -> AuthSession | None:
    token = RefreshToken.get_or_none(RefreshToken.token_hash == token_hash(raw))
    return AuthSession.get_by_id(token.session_id) if token else None


def revoke(session_ids, *, reason: str) -> list:
    """Revoke the given sessions (if still active); returns the ids that changed."""
    if not session_ids:
        return []
    rows = (
        AuthSession.update(revoked_at=utcnow(), revoked_reason=reason)
        .where(AuthSession.id.in_(list(session_ids)) & AuthSession.revoked_at.is_null())
        .returning(AuthSession.id)
        .execute()
    )
    return [row.id for row in rows]


def revoke_all(user_id, *, reason: str, except_session=None) -> list:
    """Revoke every active session of the user (optionally keeping one); returns their ids."""
    query = AuthSession.update(revoked_at=utcnow(), revoked_reason=reason).where(
        (AuthSession.user == user_id) & AuthSession.revoked_at.is_null()
    )
    if except_session is not None:
        query = query.where(AuthSession.id != except_session)
    return [row.id for row in query.returning(AuthSession.id).execute()]


def replace_refresh_token(session_id) -> tuple[AuthSession, str]:
    """A new refresh token for the session, which is reloaded; its earlier unused tokens stop working.

    They are deleted rather than marked used: presenting one afterwards is an unknown token (401),
    not a reuse that would end the session the new token belongs to.
    """
    with db.atomic():
        RefreshToken.delete().where((RefreshToken.session == session_id) & RefreshToken.used_at.is_null()).execute()
        raw = new_token()
        RefreshToken.create(token_hash=token_hash(raw), session=session_id)
    return AuthSession.get_by_id(session_id), raw
