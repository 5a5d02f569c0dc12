"""``If-Match`` as RFC 9110 writes it (section 13.1.1): ``*`` or a list of quoted entity-tags.

Falcon's own parser accepts an unquoted ``v1`` as a tag; a client sending that
has a bug worth telling it about, so a malformed header is a 400 rather than a
precondition quietly judged against a value the client never meant as a tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

import falcon

from api.errors import Problem

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE ; etagc = %x21 / %x23-7E / obs-text
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
_LIST_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")


@dataclass(frozen=True)
class EntityTag:
    opaque: str
    weak: bool = False


ANY: Final = "*"


def parse_if_match(header: str | None) -> list[EntityTag] | Literal["*"] | None:
    """The tags of an ``If-Match`` value; ``ANY`` for ``*``; None when the header is absent.

    Raises a 400 problem (``malformed-if-match``) for anything RFC 9110 does not allow.
    """
    if header is None:
        return None
    value = header.strip(" \t")
    if value == ANY:
        return ANY
    tags = []
    for part in _LIST_SEPARATOR.split(value):
        if not part:  # the list syntax allows empty elements ("a, , b")
            continue
        match = _ENTITY_TAG.fullmatch(part)
        if match is None:
            raise malformed_if_match()
        tags.append(EntityTag(match.group(2), weak=bool(match.group(1))))
    if not tags:
        raise malformed_if_match()
    return tags


def malformed_if_match() -> Problem:
    return Problem(
        falcon.HTTP_400,
        "Malformed If-Match",
        'If-Match must be * or a list of quoted entity-tags, such as "v3" (RFC 9110, section 8.8.3); '
        "send the ETag header exactly as it was received.",
        slug="malformed-if-match",
    )
