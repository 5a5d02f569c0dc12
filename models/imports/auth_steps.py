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

import psycopg2.errors
from peewee import IntegrityError

from models.accounts import SELF_SERVICE_ROLES, User
from models.base import utcnow
from models.db import db
from models.identities import UserIdentity
from models.imports import staged, users_rules
from models.imports.auth_batch import apply_identities
from models.imports.steps import Outcome, Source, SourceRow, Step, StepContext, source_row

USERS = "auth.users"
IDENTITIES = "auth.identities"


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _unique_violation(exc: BaseException) -> bool:
    """Whether a driver error (as peewee raises it: the driver's error as its context) is a unique key's."""
    return any(
        isinstance(error, psycopg2.errors.UniqueViolation) for error in (exc, exc.__cause__, exc.__context__, *exc.args)
    )


class UsersStep(Step):
    """``auth.users`` → users, staged: the rules are the SQL of ``models.imports.users_rules``."""

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
    staged = True
    stage_table = users_rules.STAGE_TABLE
    stage_columns = users_rules.STAGE_COLUMNS
    _CREATED = [name for name, _ in users_rules.STAGE_COLUMNS].index("created_at")

    def staged_select(self, source: Source, since: datetime.datetime | None, after: Any = None) -> tuple[str, list]:
        return users_rules.source_select(
            self.required, SELF_SERVICE_ROLES, since, after, server_version=source.server_version
        )

    def position_of(self, row: bytes) -> Any:
        values = staged.fields(row)
        return [staged.timestamp(values[self._CREATED]) or "-infinity", str(uuid.UUID(bytes=values[0]))]

    def apply_staged(self, first: int, last: int, ctx: StepContext) -> list[tuple[str, str | None, int]]:
        if "fresh" not in ctx.memo:  # the first chunk of this pass: did the import map know the table before it?
            found = db.execute_sql("SELECT EXISTS (SELECT 1 FROM import_map WHERE source_table = %s)", (self.name,))
            ctx.memo["fresh"] = not found.fetchone()[0]
        if ctx.memo["fresh"] and first < last:  # a batch only: a row applied alone is always probed
            try:
                with db.atomic():
                    return self._apply_staged(first, last, ctx, fresh=True)
            except IntegrityError as exc:
                if not _unique_violation(exc):
                    raise
                # A row met a Hearth user (or an import map entry) after all: probed, from now on.
                ctx.memo["fresh"] = False
        return self._apply_staged(first, last, ctx, fresh=False)

    def _apply_staged(
        self, first: int, last: int, ctx: StepContext, *, fresh: bool
    ) -> list[tuple[str, str | None, int]]:
        params = {
            "fresh": fresh,
            "table": self.name,
            "target": self.target,
            "run": ctx.run_id,
            "seen": ctx.snapshot_at,
            "first": first,
            "last": last,
            "bcrypt": users_rules.BCRYPT_PREFIXES,
            "ban_reason": users_rules.BAN_REASON,
        }
        shared = first < last and db.execute_sql(users_rules.SHARED_EMAILS, params).fetchone()[0]
        cursor = db.execute_sql(users_rules.APPLY if shared else users_rules.APPLY_UNIQUE_EMAILS, params)
        return [(kind, reason, int(rows)) for kind, reason, rows in cursor.fetchall()]

    def keys(self, source: Source) -> Iterator[str]:
        # A soft-deleted user is not at the source any more: one imported before is ``deleted-at-source``.
        for data in source.stream(self.name, columns=["id"], where="deleted_at IS NULL"):
            yield str(data["id"])

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


__all__ = ["AUTH_STEPS", "IDENTITIES", "USERS", "IdentitiesStep", "UsersStep", "auth_steps"]
