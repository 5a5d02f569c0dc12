"""Housekeeping run by beat."""

from __future__ import annotations

import datetime

from models.accounts import AccountToken, AuthSession, RefreshToken, User
from models.base import utcnow
from models.db import connection
from models.idempotency import purge_expired
from tasks.app import app
from tasks.runtime import runtime

# Expired sessions are kept a while so a user's session list and the audit
# trail still make sense; their tokens are useless either way.
SESSION_KEEP_DAYS = 30


@app.task(name="tasks.maintenance.purge_expired_tokens", acks_late=True, ignore_result=True)
def purge_expired_tokens() -> dict:
    """Delete expired account tokens, used refresh tokens of ended sessions, and long-dead sessions."""
    now = utcnow()
    with connection() as db, db.atomic():
        tokens = AccountToken.delete().where(AccountToken.expires_at < now).execute()
        ended = AuthSession.select(AuthSession.id).where(
            (AuthSession.expires_at < now) | AuthSession.revoked_at.is_null(False)
        )
        refresh = RefreshToken.delete().where(RefreshToken.session.in_(ended)).execute()
        cutoff = now - datetime.timedelta(days=SESSION_KEEP_DAYS)
        sessions = (
            AuthSession.delete()
            .where(
                (AuthSession.expires_at < cutoff)
                | (AuthSession.revoked_at.is_null(False) & (AuthSession.revoked_at < cutoff))
            )
            .execute()
        )
    return {"account_tokens": tokens, "refresh_tokens": refresh, "sessions": sessions}


@app.task(name="tasks.maintenance.redact_signed_links_from_events", acks_late=True, ignore_result=True)
def redact_signed_links_from_events() -> dict:
    """Delete job events written with a signed link by older versions (once; then a mark makes it a no-op)."""
    deleted = runtime().events.redact_signed_links()
    return {"deleted": deleted or 0, "already_done": deleted is None}


@app.task(name="tasks.maintenance.purge_expired_idempotency_keys", acks_late=True, ignore_result=True)
def purge_expired_idempotency_keys() -> dict:
    """Delete responses stored under an ``Idempotency-Key`` that are past ``IDEMPOTENCY_KEY_TTL``.

    An expired row is never replayed anyway (the API looks only at live ones);
    this only keeps the table small.
    """
    with connection() as db, db.atomic():
        deleted = purge_expired(utcnow())
    return {"idempotency_keys": deleted}


@app.task(name="tasks.maintenance.lift_expired_bans", acks_late=True, ignore_result=True)
def lift_expired_bans() -> dict:
    """Clear bans whose ``banned_until`` has passed (imported Supabase bans), so ``banned_at`` agrees.

    ``User.is_banned`` already ignores an ended ban; this keeps queries on ``banned_at`` (the admin
    user list, reports) telling the same story. Running it twice changes nothing the second time.
    """
    now = utcnow()
    with connection() as db, db.atomic():
        lifted = (
            User.update(banned_at=None, banned_until=None, ban_reason=None, updated_at=now)
            .where(User.banned_at.is_null(False) & User.banned_until.is_null(False) & (User.banned_until <= now))
            .execute()
        )
    return {"lifted": lifted}
