"""Responses stored under a client's ``Idempotency-Key`` (``api/idempotency.py`` is the HTTP side).

A row is one user's key: the request it was first used for (method, route
template, digest of path, query and body) and the response that request got,
kept until ``expires_at``. Requests with one key take turns through a
transaction-scoped advisory lock, so the row and the writes of the request it
answers commit together, and a second request arriving meanwhile learns that
the first is still running instead of waiting for it.
"""

from __future__ import annotations

import datetime

from peewee import BlobField, CompositeKey, ForeignKeyField, SmallIntegerField, TextField
from playhouse.postgres_ext import BinaryJSONField

from models.accounts import User
from models.base import BaseModel, DateTimeTZField, utcnow
from models.db import db


class IdempotencyKey(BaseModel):
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    key = TextField()
    method = TextField()
    route = TextField()
    request_digest = BlobField()
    response_status = SmallIntegerField()
    response_headers = BinaryJSONField(default=dict)
    response_body = BlobField()
    created_at = DateTimeTZField(default=utcnow)
    expires_at = DateTimeTZField()

    class Meta:
        table_name = "idempotency_keys"
        primary_key = CompositeKey("user", "key")


def take_turn(user_id, key: str) -> bool:
    """Hold ``key`` of ``user_id`` until the current transaction ends; False when another transaction holds it.

    Never waits. Call it inside ``db.atomic()``: the turn ends with the
    outermost transaction, when what it wrote is visible to the next request.
    """
    if not db.in_transaction():
        raise RuntimeError("take_turn() needs an open transaction: its lock ends with it")
    cursor = db.execute_sql(
        "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", (f"idempotency:{user_id}:{key}",)
    )
    return bool(cursor.fetchone()[0])


def find_live(user_id, key: str, now: datetime.datetime) -> IdempotencyKey | None:
    """The stored response of ``key``, unless it has expired."""
    return IdempotencyKey.get_or_none(
        (IdempotencyKey.user == user_id) & (IdempotencyKey.key == key) & (IdempotencyKey.expires_at > now)
    )


def store(
    *,
    user_id,
    key: str,
    method: str,
    route: str,
    request_digest: bytes,
    status: int,
    headers: dict[str, str],
    body: bytes,
    now: datetime.datetime,
    ttl_seconds: int,
) -> IdempotencyKey:
    """Store the response of the first request with ``key``, replacing an expired one (call under ``take_turn``)."""
    IdempotencyKey.delete().where(
        (IdempotencyKey.user == user_id) & (IdempotencyKey.key == key) & (IdempotencyKey.expires_at <= now)
    ).execute()
    return IdempotencyKey.create(
        user=user_id,
        key=key,
        method=method,
        route=route,
        request_digest=request_digest,
        response_status=status,
        response_headers=headers,
        response_body=body,
        created_at=now,
        expires_at=now + datetime.timedelta(seconds=ttl_seconds),
    )


def purge_expired(now: datetime.datetime | None = None) -> int:
    """Delete every expired stored response; returns how many went."""
    return IdempotencyKey.delete().where(IdempotencyKey.expires_at <= (now or utcnow())).execute()


__all__ = ["IdempotencyKey", "find_live", "purge_expired", "store", "take_turn"]
