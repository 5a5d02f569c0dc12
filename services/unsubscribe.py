"""Unsubscribe tokens: the links in every notification email that turn email off.

A token names a user and an event type (``"*"``: every email), sealed with
``SECRET_KEY`` under the purpose ``unsubscribe`` (``services.signing``). It never
expires, since links in old emails must keep working for as long as people keep
them, and it only ever turns email off. Its bytes are exactly those of every
token Hearth ever mailed: changing them would break every unsubscribe link in
people's mailboxes.
"""

from __future__ import annotations

import uuid
from collections.abc import Container
from typing import TypeAlias

import msgspec

from services.signing import Signer

PURPOSE = "unsubscribe"
_MAC_BYTES = 16
# A user's id as callers hold it: the row's UUID, or its text.
UserId: TypeAlias = uuid.UUID | str


def unsubscribe_token(secret: str, user_id: UserId, type_: str) -> str:
    """The token of the link that turns email of ``type_`` (``"*"``: all) off for ``user_id``."""
    return Signer(secret).seal(PURPOSE, msgspec.json.encode([str(user_id), type_]), size=_MAC_BYTES)


def read_unsubscribe_token(secret: str, token: str, types: Container[str]) -> tuple[str, str] | None:
    """``(user_id, type)`` of a token this deployment signed for ``"*"`` or one of ``types``, else None."""
    payload = Signer(secret).unseal(PURPOSE, token, size=_MAC_BYTES)
    if payload is None:
        return None
    try:
        user_id, type_ = msgspec.json.decode(payload)
        uuid.UUID(user_id)
        known = type_ == "*" or type_ in types
    except (ValueError, TypeError, AttributeError, msgspec.DecodeError):
        return None
    return (user_id, type_) if known else None


__all__ = ["UserId", "read_unsubscribe_token", "unsubscribe_token"]
