"""Opaque, tamper-proof keyset pagination cursors.

A cursor is the sort key of the last row of a page, as JSON, signed with
``SECRET_KEY``. A forged or mangled cursor is a 422 naming the ``cursor``
parameter, never a database error.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac

import msgspec

from api.errors import validation_error

_SIG_BYTES = 12


class CursorCodec:
    def __init__(self, secret: str, purpose: str):
        self.key = hashlib.sha256(f"cursor:{purpose}:{secret}".encode()).digest()

    def encode(self, values: list) -> str:
        payload = msgspec.json.encode(values)
        sig = hmac.new(self.key, payload, hashlib.sha256).digest()[:_SIG_BYTES]
        return base64.urlsafe_b64encode(sig + payload).rstrip(b"=").decode()

    def decode(self, cursor: str) -> list:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            sig, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
            if not hmac.compare_digest(sig, hmac.new(self.key, payload, hashlib.sha256).digest()[:_SIG_BYTES]):
                raise ValueError("bad signature")
            values = msgspec.json.decode(payload)
            if not isinstance(values, list):
                raise ValueError("not a list")
            return values
        except (ValueError, msgspec.DecodeError):
            raise validation_error([{"field": "query.cursor", "message": "not a cursor this API issued"}]) from None

    def newest_first(self, query, created, tiebreak, cursor: str | None, limit: int) -> tuple[list, str | None]:
        """One page of ``query``, newest first by (``created``, ``tiebreak``), and the next page's cursor.

        ``created`` is a timestamp field and ``tiebreak`` a unique column (an id)
        that orders rows created in the same instant, so pages never skip or
        repeat a row.
        """
        if cursor:
            values = self.decode(cursor)
            try:
                created_at, last = datetime.datetime.fromisoformat(values[0]), str(values[1])
            except (IndexError, TypeError, ValueError):
                raise validation_error([{"field": "query.cursor", "message": "not a cursor this API issued"}]) \
                    from None
            query = query.where((created < created_at) | ((created == created_at) & (tiebreak < last)))
        rows = list(query.order_by(created.desc(), tiebreak.desc()).limit(limit + 1))
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        last_row = rows[-1]
        # A foreign key's raw value (``property_id``), not the related row.
        tiebreak_value = getattr(last_row, getattr(tiebreak, "object_id_name", tiebreak.name))
        return rows, self.encode([getattr(last_row, created.name).isoformat(), str(tiebreak_value)])
