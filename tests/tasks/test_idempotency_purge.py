"""``purge_expired_idempotency_keys`` drops responses past their TTL and keeps the live ones."""

from __future__ import annotations

import datetime

from models.base import utcnow
from models.idempotency import IdempotencyKey, store
from tasks.maintenance import purge_expired_idempotency_keys
from tests.factories import make_user


def _stored(user, key: str, *, age_seconds: int, ttl_seconds: int = 3600) -> None:
    store(
        user_id=user.id,
        key=key,
        method="POST",
        route="/v1/things",
        request_digest=b"\0" * 32,
        status=201,
        headers={"Content-Type": "application/json"},
        body=b"{}",
        now=utcnow() - datetime.timedelta(seconds=age_seconds),
        ttl_seconds=ttl_seconds,
    )


def test_purge_deletes_expired_responses_only(runtime):
    user = make_user()
    _stored(user, "expired", age_seconds=3601)
    _stored(user, "live", age_seconds=3599)
    _stored(make_user(), "expired", age_seconds=7200)

    assert purge_expired_idempotency_keys() == {"idempotency_keys": 2}
    assert [(row.user_id, row.key) for row in IdempotencyKey.select()] == [(user.id, "live")]
    # Run again: nothing left to do.
    assert purge_expired_idempotency_keys() == {"idempotency_keys": 0}
