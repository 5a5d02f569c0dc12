"""Request and response schemas (msgspec Structs), one module per domain.

Request schemas forbid unknown fields and carry their limits, so the decoder
is the validator and the OpenAPI document is generated from the same types.
"""
from __future__ import annotations

from typing import Annotated

import msgspec


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body and query string."""


class Response(msgspec.Struct, kw_only=True):
    """Base of every response body."""


Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                                    description="An email address", examples=["ada@example.com"])]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=128, description="A password")]
Token = Annotated[str, msgspec.Meta(min_length=16, max_length=200, description="An opaque token")]
# At least one visible character: names are stored stripped, and the database refuses empty ones.
FullName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"\S", examples=["Ada Lovelace"])]
Cursor = Annotated[str, msgspec.Meta(max_length=200, description="Opaque pagination cursor from `next_cursor`")]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100, description="Page size (at most 100)")]
Phone = Annotated[str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164 phone number",
                                    examples=["+14155550123"])]


class Problem(Response):
    """An ``application/problem+json`` error (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None
    errors: list[dict] | None = None
