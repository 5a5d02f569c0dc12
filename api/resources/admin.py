"""``/v1/admin/*``: user management and the audit log, for admins only."""

from __future__ import annotations

import uuid

from api.audit import audit
from api.cursor import CursorCodec
from api.errors import conflict, not_found, validation_error
from api.operation import operation
from api.schemas.accounts import AdminUser, AdminUserList, AdminUserPatch, AdminUserQuery, AuditList, AuditQuery
from models import sessions
from models.accounts import AuthSession, User
from models.audit import AuditEntry
from models.base import utcnow
from models.db import db

TAGS = ("admin",)


def _uuid_or_404(value: str, what: str):
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(what) from None


class AdminUsers:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "admin-users")

    @operation("List users", query=AdminUserQuery, response=AdminUserList, permission="admin:users", tags=TAGS)
    def on_get(self, req, resp):
        q: AdminUserQuery = req.context.query
        query = User.select()
        if q.role:
            query = query.where(User.role == q.role)
        if q.banned is not None:
            query = query.where(User.banned_at.is_null(not q.banned))
        if q.q:
            needle = "%" + q.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(User.email.ilike(needle) | User.full_name.ilike(needle))
        rows, next_cursor = self.cursors.newest_first(query, User.created_at, User.id, q.cursor, q.limit)
        resp.media = {"items": [u.admin_view() for u in rows], "next_cursor": next_cursor}

    @operation("One user", response=AdminUser, permission="admin:users", errors=(404,), tags=TAGS)
    def on_get_item(self, req, resp, user_id):
        user = User.get_or_none(User.id == _uuid_or_404(user_id, "user"))
        if user is None:
            raise not_found("user")
        resp.media = user.admin_view()

    @operation(
        "Change a user's role, ban/unban them, or set where their payouts go",
        body=AdminUserPatch,
        response=AdminUser,
        permission="admin:users",
        errors=(404, 409, 422),
        tags=TAGS,
        description="A ban ends every session of the user at once. `payout_account` is the user's connected "
        "account at the payment provider (a Stripe Connect `acct_...` id, from the provider's onboarding): "
        "a seller's payouts go there; without one a payout with the Stripe provider fails and waits for an "
        "admin (`POST /v1/admin/payments/{id}/retry`). Every change is audited.",
    )
    def on_patch_item(self, req, resp, user_id):
        body: AdminUserPatch = req.context.body
        principal = req.context.principal
        target_id = _uuid_or_404(user_id, "user")
        if str(target_id) == principal.user_id and (body.banned or (body.role and body.role != "admin")):
            raise conflict("Admins cannot ban or demote themselves.", slug="self-admin-change")
        services = req.context.services
        revoked = []
        with db.atomic():
            user = User.select().where(User.id == target_id).for_update().first()
            if user is None:
                raise not_found("user")
            before = {"role": user.role, "banned": user.is_banned, "ban_reason": user.ban_reason}
            old_account = user.payout_account
            changes: dict[str, object] = {}
            if body.role is not None and body.role != user.role:
                changes["role"] = body.role
            if body.banned is True and not user.is_banned:
                changes.update(banned_at=utcnow(), ban_reason=body.ban_reason)
            elif body.banned is False and user.is_banned:
                changes.update(banned_at=None, ban_reason=None)
            if body.payout_account is not None and body.payout_account != user.payout_account:
                changes["payout_account"] = body.payout_account
            if changes:
                User.update(updated_at=utcnow(), **changes).where(User.id == user.id).execute()
                if changes.get("banned_at"):
                    revoked = sessions.revoke_all(user.id, reason="banned")
                user = User.get_by_id(user.id)
                after = {"role": user.role, "banned": user.is_banned, "ban_reason": user.ban_reason}
                if "payout_account" in changes:
                    before["payout_account"], after["payout_account"] = old_account, user.payout_account
                audit(req, "admin.update_user", user.id, before=before, after=after)
        if changes:
            services.sessions.mark_revoked(revoked)
            if "role" in changes:
                # Cached session states carry the role: write the new one so it applies at once.
                live = [
                    s.id
                    for s in AuthSession.select(AuthSession.id).where(
                        (AuthSession.user == user.id) & AuthSession.revoked_at.is_null()
                    )
                ]
                services.sessions.set_role(live, user.role)
            services.sessions.store_profile(user)
        resp.media = user.admin_view()


class AdminAudit:
    def __init__(self, secret: str):
        self.cursors = CursorCodec(secret, "admin-audit")

    @operation("Read the audit log", query=AuditQuery, response=AuditList, permission="admin:audit", tags=TAGS)
    def on_get(self, req, resp):
        q: AuditQuery = req.context.query
        query = AuditEntry.select()
        if q.target_type:
            query = query.where(AuditEntry.target_type == q.target_type)
        if q.target_id:
            query = query.where(AuditEntry.target_id == q.target_id)
        if q.actor_id:
            try:
                query = query.where(AuditEntry.actor == uuid.UUID(q.actor_id))
            except ValueError:
                raise validation_error([{"field": "query.actor_id", "message": "not a UUID"}]) from None
        if q.cursor:
            (last_id,) = self.cursors.decode(q.cursor)
            query = query.where(AuditEntry.id < int(last_id))
        rows = list(query.order_by(AuditEntry.id.desc()).limit(q.limit + 1))
        next_cursor = None
        if len(rows) > q.limit:
            rows = rows[: q.limit]
            next_cursor = self.cursors.encode([rows[-1].id])
        resp.media = {"items": [r.view() for r in rows], "next_cursor": next_cursor}
