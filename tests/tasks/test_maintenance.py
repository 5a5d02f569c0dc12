"""``purge_expired_tokens`` removes what can never be used again and keeps everything else."""

from __future__ import annotations

import datetime

import pytest

from models import sessions
from models.accounts import AccountToken, AuthSession, RefreshToken, new_token, token_hash
from models.base import utcnow
from tasks.maintenance import SESSION_KEEP_DAYS, purge_expired_tokens
from tests.factories import make_user

DAY = datetime.timedelta(days=1)


def _session(user, *, expires_at=None, revoked_at=None, refresh=("unused",)) -> tuple[AuthSession, dict]:
    session = AuthSession.create(user=user.id, expires_at=expires_at or utcnow() + DAY, revoked_at=revoked_at)
    tokens = {}
    for state in refresh:
        raw = new_token()
        RefreshToken.create(
            token_hash=token_hash(raw), session=session.id, used_at=utcnow() if state == "used" else None
        )
        tokens[state] = raw
    return session, tokens


def _account_token(user, *, expires_at, used=False) -> bytes:
    digest = token_hash(new_token())
    AccountToken.create(
        token_hash=digest,
        user=user.id,
        purpose="verify_email",
        expires_at=expires_at,
        used_at=utcnow() if used else None,
    )
    return digest


def test_purge_deletes_what_is_dead_and_keeps_what_is_alive(runtime):
    user = make_user()
    now = utcnow()
    long_ago = now - datetime.timedelta(days=SESSION_KEEP_DAYS + 1)

    expired_token = _account_token(user, expires_at=now - datetime.timedelta(seconds=1))
    live_token = _account_token(user, expires_at=now + DAY)
    used_live_token = _account_token(user, expires_at=now + DAY, used=True)

    active, _ = _session(user, refresh=("used", "unused"))
    revoked_recently, _ = _session(user, revoked_at=now - DAY, refresh=("used", "unused"))
    expired_recently, _ = _session(user, expires_at=now - DAY, refresh=("unused",))
    _revoked_long_ago, _ = _session(user, revoked_at=long_ago, refresh=("used",))
    _expired_long_ago, _ = _session(user, expires_at=long_ago, refresh=())

    result = purge_expired_tokens()
    assert result == {"account_tokens": 1, "refresh_tokens": 4, "sessions": 2}

    assert {bytes(t.token_hash) for t in AccountToken.select()} == {live_token, used_live_token}
    assert expired_token not in {bytes(t.token_hash) for t in AccountToken.select()}
    assert {s.id for s in AuthSession.select()} == {active.id, revoked_recently.id, expired_recently.id}
    # Only the active session keeps its refresh tokens, the used one included.
    assert {t.session_id for t in RefreshToken.select()} == {active.id}
    assert RefreshToken.select().where(RefreshToken.session == active.id).count() == 2

    # Running it again finds nothing more to do.
    assert purge_expired_tokens() == {"account_tokens": 0, "refresh_tokens": 0, "sessions": 0}


def test_reuse_detection_survives_the_purge(runtime):
    user = make_user()
    session, raw = sessions.start_session(user, ttl=3600, user_agent=None, ip=None)
    _, fresh = sessions.rotate(raw)
    purge_expired_tokens()
    # The consumed token of a live session is still known, so replaying it ends the session.
    with pytest.raises(sessions.RefreshRejected) as replayed:
        sessions.rotate(raw)
    assert replayed.value.reused
    assert AuthSession.get_by_id(session.id).revoked_at is not None
    # The newest token of the revoked family is refused too.
    with pytest.raises(sessions.RefreshRejected):
        sessions.rotate(fresh)
