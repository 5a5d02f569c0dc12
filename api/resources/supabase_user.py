"""``/auth/v1/user``: the signed-in user in GoTrue's shape, and its changes (profile data, password).

A new password needs ``current_password`` unless the session began within
``RECENT_LOGIN_SECONDS`` (a fresh login, or a recovery link just opened): a
stolen access token alone cannot take the account over. Changing the email
address or the phone number is not offered here (Hearth's ``/v1`` has no email
change either; the phone is verified through ``/v1/me/phone``).
"""

from __future__ import annotations

import datetime

import falcon

from api import auth_flows as flows
from api.audit import audit
from api.operation import decode_body, operation
from api.resources.supabase_auth import TAGS, checked_metadata, validation_failed, weak_password
from api.schemas.supabase import UserUpdateBody
from api.supabase_shapes import gotrue_error, user_view
from models.accounts import AuthSession, User
from models.base import utcnow
from models.db import db
from models.passwords import policy_problem, verify_password

RECENT_LOGIN_SECONDS = 10 * 60


def _current_user(req) -> User:
    user = User.get_by_id(req.context.principal.user_id)
    if user.is_banned:
        raise gotrue_error(falcon.HTTP_403, "user_banned", "User is banned")
    return user


class SupabaseUser:
    # supabase-js reads the user's factors before its second step (mfa.listFactors, getAuthenticatorAssuranceLevel).
    @operation("The signed-in user (GoTrue)", tags=TAGS, before_mfa=True)
    def on_get(self, req, resp):
        resp.media = user_view(_current_user(req))

    @operation("Change the signed-in user's data or password (GoTrue)", tags=TAGS, raw_body="application/json")
    def on_put(self, req, resp):
        body = decode_body(req, UserUpdateBody, req.context.services.settings.max_body_bytes)
        user = _current_user(req)
        if body.app_metadata is not None:
            raise gotrue_error(falcon.HTTP_403, "not_admin", "Updating app_metadata requires admin privileges")
        if body.email is not None and User.normalize_email(body.email) != user.email:
            raise gotrue_error(
                falcon.HTTP_422, "email_change_not_supported", "Changing the email address is not supported"
            )
        if body.phone is not None and body.phone != (user.phone or ""):
            raise gotrue_error(falcon.HTTP_422, "phone_provider_disabled", "Changing the phone number is not supported")
        if body.password is not None:
            self._set_password(req, user, body)
        if body.data is not None:
            self._update_data(req, user, checked_metadata(body.data))
        resp.media = user_view(User.get_by_id(user.id))

    @staticmethod
    def _set_password(req, user: User, body: UserUpdateBody) -> None:
        password = body.password or ""
        principal = req.context.principal
        session = AuthSession.get_by_id(principal.session_id)
        recent = utcnow() - session.created_at < datetime.timedelta(seconds=RECENT_LOGIN_SECONDS)
        if body.current_password is None and not recent:
            raise gotrue_error(
                falcon.HTTP_400, "current_password_required", "Current password required when setting new password."
            )
        if body.current_password is not None and not verify_password(user.password_hash, body.current_password):
            raise gotrue_error(
                falcon.HTTP_400, "current_password_mismatch", "Current password required when setting new password."
            )
        if verify_password(user.password_hash, password):
            raise gotrue_error(
                falcon.HTTP_422, "same_password", "New password should be different from the old password."
            )
        problem = policy_problem(password, email=user.email, full_name=user.full_name)
        if problem:
            raise weak_password(problem)
        flows.set_password(req, user, password, reason="password_change", keep_session=principal.session_id)

    @staticmethod
    def _update_data(req, user: User, data: dict) -> None:
        name = data.get("full_name")
        if not isinstance(name, (str, type(None))):
            raise validation_failed("data.full_name must be a string")
        # GoTrue merges the keys it is sent into user_metadata; a null value removes a key.
        merged = {**(user.user_metadata or {}), **data}
        merged = {key: value for key, value in merged.items() if value is not None and key != "full_name"}
        changes: dict[str, object] = {"user_metadata": checked_metadata(merged), "updated_at": utcnow()}
        if name and name.strip():
            changes["full_name"] = name.strip()[:200]
        with db.atomic():
            User.update(**changes).where(User.id == user.id).execute()
            audit(req, "user.profile_update", user.id, after={"fields": sorted(data)})
        req.context.services.sessions.store_profile(User.get_by_id(user.id))
