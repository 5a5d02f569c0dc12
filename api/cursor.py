"""Opaque, tamper-proof keyset pagination cursors.

A cursor is the sort key of the last row of a page, as JSON, sealed with
``SECRET_KEY`` (``services.signing``, purpose ``cursor:<purpose>``). A forged or
mangled cursor is a 422 naming the ``cursor`` parameter, never a database error.
"""

from __future__ import annotations

import datetime

import msgspec

from api.errors import validation_error
from services.signing import Signer

_SIG_BYTES = 12


class CursorCodec:
    def __init__(self, secret: str, purpose: str):
        self.signer = Signer(secret)
        self.purpose = f"cursor:{purpose}"

    def encode(self, values: list) -> str:
        return self.signer.seal(self.purpose, msgspec.json.encode(values), size=_SIG_BYTES)

    def decode(self, cursor: str) -> list:
        try:
            payload = self.signer.unseal(self.purpose, cursor, size=_SIG_BYTES)
            if payload is None:
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
                raise validation_error([{"field": "query.cursor", "message": "not a cursor this API issued"}]) from None
            query = query.where((created < created_at) | ((created == created_at) & (tiebreak < last)))
        rows = list(query.order_by(created.desc(), tiebreak.desc()).limit(limit + 1))
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        last_row = rows[-1]
        # A foreign key's raw value (``property_id``), not the related row.
        tiebreak_value = getattr(last_row, getattr(tiebreak, "object_id_name", tiebreak.name))
        return rows, self.encode([getattr(last_row, created.name).isoformat(), str(tiebreak_value)])
