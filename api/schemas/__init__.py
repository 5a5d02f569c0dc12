"""Request and response schemas (msgspec Structs), one module per domain.

Request schemas forbid unknown fields and carry their limits, so the decoder
is the validator and the OpenAPI document is generated from the same types.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from models.passwords import MAX_LENGTH as MAX_PASSWORD
from models.passwords import MIN_LENGTH as MIN_PASSWORD


class Request(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body and query string."""


class Response(msgspec.Struct, kw_only=True):
    """Base of every response body."""


# Characters no single-line field holds: C0 controls (line breaks and tabs among them), DEL, C1
# controls, and the Unicode line and paragraph separators. A name with a line break would break the
# header of an email that quotes it. The patterns hold the characters themselves (JSON escapes them
# as \u0000...), so Python's and ECMA-262's regular expressions read them alike.
_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029"
# Whitespace that is not a control character: what str.strip() drops from a single line.
_SPACE = " \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
# Multi-line text keeps tab, line feed and carriage return, and refuses every other C0 control.
_TEXT_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f"
# Whitespace of multi-line text: what str.strip() drops from it.
_TEXT_SPACE = "\t\n\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

SINGLE_LINE = f"^[^{_CONTROL}]*$"
# A single line holding at least one visible character (stored stripped, never empty). Spaces
# first, then the first visible character: one way to match, so no backtracking on long input.
VISIBLE_LINE = f"^[{_SPACE}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"
MULTI_LINE = f"^[^{_TEXT_CONTROL}]*$"
VISIBLE_TEXT = f"^[{_TEXT_SPACE}]*[^{_TEXT_CONTROL}{_TEXT_SPACE}][^{_TEXT_CONTROL}]*$"
# What a 422 says when a string does not match one of these patterns.
PATTERN_MESSAGES = {
    SINGLE_LINE: "must be a single line without control characters",
    VISIBLE_LINE: "must be a single line without control characters, with a visible character",
    MULTI_LINE: "must not contain control characters other than tab and line breaks",
    VISIBLE_TEXT: "must contain a visible character and no control characters other than tab and line breaks",
}


def line(max_length: int, *, min_length: int = 0, **meta) -> msgspec.Meta:
    """Constraints of a single-line string: no control characters; with ``min_length``, not blank."""
    return msgspec.Meta(
        min_length=min_length or None,
        max_length=max_length,
        pattern=VISIBLE_LINE if min_length else SINGLE_LINE,
        **meta,
    )


def text(max_length: int, *, min_length: int = 0, **meta) -> msgspec.Meta:
    """Constraints of multi-line text: tabs and line breaks, no other C0 control; with ``min_length``, not blank."""
    return msgspec.Meta(
        min_length=min_length or None, max_length=max_length, pattern=VISIBLE_TEXT if min_length else MULTI_LINE, **meta
    )


# For patterns of their own (an email, a URL): a class of every character that is neither.
CONTROL_AND_SPACE = _CONTROL + _SPACE
_EMAIL_PART = f"[^@{CONTROL_AND_SPACE}]+"
EMAIL = f"^{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}$"
PATTERN_MESSAGES[EMAIL] = "must be an email address: name@domain, without spaces or control characters"
Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3, max_length=254, pattern=EMAIL, description="An email address", examples=["ada@example.com"]
    ),
]
# Any single line, blank ones too: a password of spaces is a password (line() would want a visible character).
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=SINGLE_LINE, description="A password")]
NewPassword = Annotated[
    str,
    msgspec.Meta(
        min_length=MIN_PASSWORD,
        max_length=MAX_PASSWORD,
        pattern=SINGLE_LINE,
        description=f"A new password: {MIN_PASSWORD} to {MAX_PASSWORD} characters, not one of the most common "
        "passwords, not your email address's name or your name",
    ),
]
Token = Annotated[str, line(200, min_length=16, description="An opaque token")]
FullName = Annotated[str, line(200, min_length=1, examples=["Ada Lovelace"])]
Cursor = Annotated[str, line(200, description="Opaque pagination cursor from `next_cursor`")]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100, description="Page size (at most 100)")]
Phone = Annotated[
    str, msgspec.Meta(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164 phone number", examples=["+14155550123"])
]


class Problem(Response):
    """An ``application/problem+json`` error (RFC 9457)."""

    type: str
    title: str
    status: int
    detail: str | None = None
    request_id: str | None = None
    errors: list[dict] | None = None
