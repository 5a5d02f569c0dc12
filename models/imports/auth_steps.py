"""The steps for Supabase's own auth tables: ``auth.users`` → users, ``auth.identities`` → user_identities.

Users keep their UUIDs and their bcrypt hashes (the first login upgrades them to argon2id). What
comes across, and what is reported instead, is listed in docs/import.md; in short:

- soft-deleted (``deleted_at``) and anonymous (``is_anonymous``) users are not imported
  (``deleted``, ``anonymous``); nor are users without an email (``no-email``: phone-only sign-ups);
  a user soft-deleted after an earlier run imported them is gone at the source, exactly like a deleted
  row: reported ``deleted-at-source``, and deleted in Hearth with ``--apply-deletes``;
- users without a password (OAuth, SSO) are imported without one and reported (``no-password``);
- two users whose emails differ only by case: the one created first is imported, the other is
  reported (``duplicate-email``) with both ids. Users are read oldest first so that holds;
- the role is ``raw_app_meta_data.role`` when it is a self-service Hearth role, else ``buyer``:
  an admin is made in Hearth, never by an imported field;
- a ban still running at the snapshot carries over (``banned_at``, ``banned_until``);
- an unconfirmed email stays unverified, so the import alone never lets anyone log in.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from typing import Any

from models.accounts import SELF_SERVICE_ROLES, User
from models.base import utcnow
from models.identities import UserIdentity
from models.imports.auth_batch import apply_identities, apply_users
from models.imports.import_map import ImportMap
from models.imports.steps import Outcome, Source, SourceRow, Step, StepContext, source_row

USERS = "auth.users"
IDENTITIES = "auth.identities"
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
BAN_REASON = "Banned in the previous backend (imported)"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def full_name_of(meta: dict, email: str) -> str:
    """``full_name`` or ``name`` from the user's metadata, else the email's local part (1-200 chars)."""
    for key in ("full_name", "name"):
        value = meta.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return (email.split("@", 1)[0] or email)[:200]


def role_of(app_meta: dict) -> str:
    role = app_meta.get("role")
    return role if isinstance(role, str) and role in SELF_SERVICE_ROLES else "buyer"


def providers_of(data: dict) -> str:
    app_meta = _as_dict(data.get("raw_app_meta_data"))
    providers = app_meta.get("providers") or ([app_meta["provider"]] if app_meta.get("provider") else [])
    names = [str(p) for p in providers if p]
    if data.get("is_sso_user"):
        names.append("sso")
    return ", ".join(dict.fromkeys(names)) or "none"


class UsersStep(Step):
    name = USERS
    target = "users"
    updated_column = "updated_at"
    required = (
        "id",
        "email",
        "encrypted_password",
        "email_confirmed_at",
        "phone",
        "phone_confirmed_at",
        "banned_until",
        "deleted_at",
        "is_anonymous",
        "is_sso_user",
        "raw_app_meta_data",
        "raw_user_meta_data",
        "last_sign_in_at",
        "created_at",
        "updated_at",
    )
    # Oldest first (the first of two case-duplicates wins); NULL created_at first, as the oldest.
    _ORDER = ("coalesce(created_at, '-infinity'::timestamptz)", "id")

    def rows(self, source: Source, since: datetime.datetime | None, after: Any = None) -> Iterator[SourceRow]:
        # Which soft-deleted users came across before is asked here, in the caller's thread and
        # transaction: the runner reads the rows themselves ahead in a thread that only reads the source.
        gone = self._imported_then_deleted(source)
        return self._rows(source, since, after, gone)

    def _imported_then_deleted(self, source: Source) -> set[str]:
        deleted = [str(data["id"]) for data in source.stream(self.name, columns=["id"], where="deleted_at IS NOT NULL")]
        return {key for key in deleted if ImportMap.imported(self.name, key)}

    def _rows(self, source: Source, since, after, gone: set[str]) -> Iterator[SourceRow]:
        where, params = [], []
        if since is not None:
            where.append("updated_at > %s")
            params.append(since)
        if after:
            where.append("(coalesce(created_at, '-infinity'::timestamptz), id) > (%s::timestamptz, %s::uuid)")
            params.extend(after)
        for data in source.stream(
            self.name, columns=self.required, where=" AND ".join(where), params=params, order_by=self._ORDER
        ):
            if str(data["id"]) in gone:
                continue  # soft-deleted after it came across: gone at the source, as keys() says
            created = data.get("created_at")
            position = [created.isoformat() if created else "-infinity", str(data["id"])]
            yield source_row(data["id"], data, position)

    def keys(self, source: Source) -> Iterator[str]:
        # A soft-deleted user is not at the source any more: one imported before is ``deleted-at-source``.
        for data in source.stream(self.name, columns=["id"], where="deleted_at IS NULL"):
            yield str(data["id"])

    @staticmethod
    def admissible(data: dict) -> Outcome | tuple[uuid.UUID, str]:
        """``(user id, normalized email)`` of a user that may come across, else why not (a skip)."""
        if data.get("deleted_at") is not None:
            return Outcome.skipped("deleted", f"deleted at the source on {data['deleted_at'].isoformat()}")
        if data.get("is_anonymous"):
            return Outcome.skipped("anonymous", "anonymous sign-in, no account to carry over")
        email = User.normalize_email(data.get("email") or "")
        if not email:
            return Outcome.skipped("no-email", "no email address (phone-only sign-up)")
        if not 3 <= len(email) <= 254 or "@" not in email:
            return Outcome.skipped("invalid-email", "the email address is not one Hearth can hold")
        return uuid.UUID(str(data["id"])), email

    @staticmethod
    def duplicate(email: str, holder_id, user_id) -> Outcome:
        return Outcome.skipped(
            "duplicate-email",
            f"{email} is already the email of {holder_id} (imported first, or a Hearth account);"
            f" this user {user_id} was not imported",
        )

    @staticmethod
    def settle(data: dict, fields: dict, existing_hash: str | None, *, exists: bool) -> str | None:
        """Keep a password Hearth owns (``fields`` changed in place); the ``no-password`` detail, if due."""
        if exists and existing_hash and not existing_hash.startswith(BCRYPT_PREFIXES):
            # Logged in to Hearth already (hash upgraded) or changed there: Hearth's password stands.
            fields["password_hash"] = existing_hash
            return None
        if fields["password_hash"] is None:
            return f"signs in with: {providers_of(data)}; needs a set-password link or re-linking"
        return None

    def apply(self, row: SourceRow, ctx: StepContext) -> Outcome:
        data = row.data
        admitted = self.admissible(data)
        if isinstance(admitted, Outcome):
            return admitted
        user_id, email = admitted
        holder = User.select(User.id).where(User.email == email).first()
        if holder is not None and holder.id != user_id:
            return self.duplicate(email, holder.id, user_id)
        fields = self.fields(data, email)
        existing = User.get_or_none(User.id == user_id)
        detail = self.settle(data, fields, existing.password_hash if existing else None, exists=existing is not None)
        note = ("no-password", detail) if detail else (None, None)
        if existing is None:
            User.insert(id=user_id, **fields).execute()
            return Outcome.inserted(user_id, *note)
        User.update(**fields).where(User.id == user_id).execute()
        return Outcome.updated(user_id, *note)

    def apply_batch(self, rows: list[tuple[SourceRow, str | None]], ctx: StepContext) -> list[Outcome] | None:
        return apply_users(self, [row for row, _previous in rows])

    @staticmethod
    def fields(data: dict, email: str) -> dict:
        password = data.get("encrypted_password") or None
        if password is not None and not password.startswith(BCRYPT_PREFIXES):
            password = None
        meta = _as_dict(data.get("raw_user_meta_data"))
        banned_until = data.get("banned_until")
        banned = banned_until is not None and banned_until > utcnow()
        phone = (data.get("phone") or "").strip() or None
        if phone and not phone.startswith("+"):
            phone = "+" + phone  # GoTrue stores E.164 numbers without their plus
        created = data.get("created_at") or _EPOCH
        return {
            "email": email,
            "password_hash": password,
            "full_name": full_name_of(meta, email),
            "role": role_of(_as_dict(data.get("raw_app_meta_data"))),
            "phone": phone,
            "phone_verified_at": data.get("phone_confirmed_at") if phone else None,
            "email_verified_at": data.get("email_confirmed_at"),
            "banned_at": (data.get("updated_at") or utcnow()) if banned else None,
            "banned_until": banned_until if banned else None,
            "ban_reason": BAN_REASON if banned else None,
            "user_metadata": meta,
            "last_login_at": data.get("last_sign_in_at"),
            "created_at": created,
            "updated_at": data.get("updated_at") or created,
        }

    def delete(self, target_id: str, ctx: StepContext) -> Outcome:
        """A user deleted at the source is deleted in Hearth too (their sessions and identities with them)."""
        User.delete().where(User.id == target_id).execute()
        return Outcome.updated(target_id)


class IdentitiesStep(Step):
    name = IDENTITIES
    target = "user_identities"
    updated_column = "updated_at"
    required = (
        "id",
        "user_id",
        "provider",
        "provider_id",
        "identity_data",
        "last_sign_in_at",
        "created_at",
        "updated_at",
    )

    def rows(self, source: Source, since: datetime.datetime | None, after: Any = None) -> Iterator[SourceRow]:
        where, params = [], []
        if since is not None:
            where.append("updated_at > %s")
            params.append(since)
        if after:
            where.append("id > %s::uuid")
            params.append(after)
        for data in source.stream(
            self.name, columns=self.required, where=" AND ".join(where), params=params, order_by=("id",)
        ):
            yield source_row(data["id"], data, str(data["id"]))

    def keys(self, source: Source) -> Iterator[str]:
        for data in source.stream(self.name, columns=["id"]):
            yield str(data["id"])

    def apply(self, row: SourceRow, ctx: StepContext) -> Outcome:
        data = row.data
        user_id = ctx.resolve(USERS, str(data["user_id"]))
        if user_id is None:
            return self.missing_user(data)
        fields = self.fields(data, user_id)
        identity_id = uuid.UUID(str(data["id"]))
        clash = (
            UserIdentity.select(UserIdentity.id)
            .where((UserIdentity.provider == fields["provider"]) & (UserIdentity.provider_id == fields["provider_id"]))
            .first()
        )
        if clash is not None and clash.id != identity_id:
            return self.duplicate(fields, clash.id)
        if UserIdentity.get_or_none(UserIdentity.id == identity_id) is None:
            UserIdentity.insert(id=identity_id, **fields).execute()
            return Outcome.inserted(identity_id)
        UserIdentity.update(**fields).where(UserIdentity.id == identity_id).execute()
        return Outcome.updated(identity_id)

    def apply_batch(self, rows: list[tuple[SourceRow, str | None]], ctx: StepContext) -> list[Outcome] | None:
        if ctx.resolve_many is None:
            return None
        chunk = [row for row, _previous in rows]
        users = ctx.resolve_many(USERS, (str(row.data["user_id"]) for row in chunk))
        return apply_identities(self, chunk, users)

    @staticmethod
    def missing_user(data: dict) -> Outcome:
        return Outcome.skipped("missing-reference", f"user {data['user_id']} was not imported")

    @staticmethod
    def duplicate(fields: dict, holder_id) -> Outcome:
        return Outcome.skipped("duplicate-identity", f"{fields['provider']} identity already held by {holder_id}")

    @staticmethod
    def fields(data: dict, user_id: str) -> dict:
        identity_data = _as_dict(data.get("identity_data"))
        email = identity_data.get("email")
        return {
            "user": uuid.UUID(user_id),
            "provider": str(data["provider"])[:100],
            "provider_id": str(data["provider_id"])[:255],
            "identity_data": identity_data,
            "email": User.normalize_email(email) if isinstance(email, str) and email.strip() else None,
            "last_sign_in_at": data.get("last_sign_in_at"),
            "created_at": data.get("created_at") or utcnow(),
            "updated_at": data.get("updated_at") or data.get("created_at") or utcnow(),
        }

    def delete(self, target_id: str, ctx: StepContext) -> Outcome:
        UserIdentity.delete().where(UserIdentity.id == target_id).execute()
        return Outcome.updated(target_id)


AUTH_STEPS = (USERS, IDENTITIES)


def auth_steps() -> list[Step]:
    return [UsersStep(), IdentitiesStep()]


__all__ = ["AUTH_STEPS", "IDENTITIES", "USERS", "IdentitiesStep", "UsersStep", "auth_steps", "full_name_of", "role_of"]
