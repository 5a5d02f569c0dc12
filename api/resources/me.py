"""``/v1/me``: the signed-in user's profile, password and sessions."""

from __future__ import annotations

import falcon
import msgspec

from api import auth_flows as flows
from api.audit import audit
from api.errors import not_found, unauthorized
from api.operation import operation
from api.resources.auth import password_error
from api.schemas.accounts import ChangePasswordRequest, Profile, ProfilePatch, SessionList
from models import sessions
from models.accounts import AuthSession, User
from models.base import utcnow
from models.db import db
from models.passwords import policy_problem, verify_password
from models.phone import number_changed

TAGS = ("me",)


def _profile_key(cache, user_id):
    return (cache.profile_key(user_id),)


class Me:
    @operation("My profile", response=Profile, permission="profile:read", tags=TAGS, prefetch=_profile_key)
    def on_get(self, req, resp):
        cached = req.context.prefetched[0] if req.context.prefetched else None
        if cached is not None:  # hot path: no database round trip
            resp.data = cached
            resp.content_type = falcon.MEDIA_JSON
            return
        services = req.context.services
        user = User.get_or_none(User.id == req.context.principal.user_id)
        if user is None:
            raise unauthorized("This account no longer exists.")
        body = msgspec.json.encode(user.profile())
        services.sessions.fill_profile(user.id, body)
        resp.data = body
        resp.content_type = falcon.MEDIA_JSON

    @operation(
        "Update my profile", body=ProfilePatch, response=Profile, permission="profile:write", errors=(422,), tags=TAGS
    )
    def on_patch(self, req, resp):
        principal = req.context.principal
        changes = {k: v for k, v in msgspec.structs.asdict(req.context.body).items() if v is not None}
        with db.atomic():
            user = User.select().where(User.id == principal.user_id).for_update().get()
            before = {k: getattr(user, k) for k in changes}
            if changes:
                if "full_name" in changes:
                    changes["full_name"] = changes["full_name"].strip()
                User.update(updated_at=utcnow(), **changes).where(User.id == user.id).execute()
                if changes.get("phone", user.phone) != user.phone:
                    # A new number is unproven: no text message goes to it until it is verified.
                    number_changed(user.id)
                audit(req, "user.update_profile", user.id, before=before, after=changes)
                user = User.get_by_id(user.id)
        req.context.services.sessions.store_profile(user)
        resp.media = user.profile()


class MyPassword:
    @operation(
        "Change my password",
        body=ChangePasswordRequest,
        status=204,
        permission="profile:write",
        errors=(403, 422),
        tags=TAGS,
        description="Needs the current password. Every other session of the account ends.",
    )
    def on_post(self, req, resp):
        body: ChangePasswordRequest = req.context.body
        principal = req.context.principal
        user = User.get_by_id(principal.user_id)
        if not verify_password(user.password_hash, body.current_password):
            raise password_error("current_password", "is not correct")
        problem = policy_problem(body.new_password, email=user.email, full_name=user.full_name)
        if problem:
            raise password_error("new_password", problem)
        flows.set_password(req, user, body.new_password, reason="password_change", keep_session=principal.session_id)
        resp.status = falcon.HTTP_204


class MySessions:
    @operation("My sessions (logins)", response=SessionList, permission="profile:read", tags=TAGS)
    def on_get(self, req, resp):
        principal = req.context.principal
        rows = (
            AuthSession.select()
            .where(
                (AuthSession.user == principal.user_id)
                & AuthSession.revoked_at.is_null()
                & (AuthSession.expires_at > utcnow())
            )
            .order_by(AuthSession.last_used_at.desc())
            .limit(100)
        )
        resp.media = {"items": [dict(s.view(), current=str(s.id) == principal.session_id) for s in rows]}

    @operation("End one of my sessions", status=204, permission="profile:write", errors=(404,), tags=TAGS)
    def on_delete_item(self, req, resp, session_id):
        principal = req.context.principal
        session = AuthSession.get_or_none((AuthSession.id == session_id) & (AuthSession.user == principal.user_id))
        if session is None:
            raise not_found("session")
        revoked = sessions.revoke([session.id], reason="user_revoked")
        req.context.services.sessions.mark_revoked(revoked)
        resp.status = falcon.HTTP_204
