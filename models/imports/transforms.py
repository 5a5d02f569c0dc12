"""Value transforms of a Supabase import's mapping file: casts, money, enum maps, JSON paths, Storage references.

Each transform takes the source value (``None`` stays ``None`` unless a default applies) and either
returns the Hearth value or raises ``BadValue`` with a reason an operator can act on. Nothing here
guesses: money with more than two decimals, a number written in words or an enum value the mapping
does not list is refused, so the row is reported instead of imported wrong.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import uuid
from urllib.parse import unquote, urlparse

CASTS = ("int", "float", "bool", "text", "date", "timestamp", "uuid")
# Every name a mapping may give as ``transform``; ``ref`` and ``storage_url`` need the import map.
TRANSFORMS = (*CASTS, "money", "enum", "ref", "storage_url", "json")

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_INT_TEXT = re.compile(r"[+-]?\d+")
_MONEY_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


class BadValue(ValueError):
    """A source value the transform cannot turn into a Hearth value; the message is the reason."""


def cast(kind: str, value):
    """``value`` as ``kind`` (one of ``CASTS``); ``BadValue`` when it is not one."""
    if value is None:
        return None
    return _CASTERS[kind](value)


def _to_int(value) -> int:
    if isinstance(value, bool):
        raise BadValue(f"{value!r} is a boolean, not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, (decimal.Decimal, float)):
        if value != value or value in (float("inf"), float("-inf")) or value != int(value):
            raise BadValue(f"{value} is not a whole number")
        return int(value)
    text = str(value).strip()
    if not _INT_TEXT.fullmatch(text):
        raise BadValue(f"{_short(value)} is not an integer")
    return int(text)


def _to_float(value) -> float:
    if isinstance(value, bool):
        raise BadValue(f"{value!r} is a boolean, not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise BadValue(f"{_short(value)} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise BadValue(f"{_short(value)} is not a finite number")
    return number


def _to_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadValue(f"{_short(value)} is not a boolean")


def _to_text(value) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _to_date(value) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise BadValue(f"{_short(value)} is not a date (YYYY-MM-DD)") from None


def _to_timestamp(value) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, datetime.date):
        moment = datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.UTC)
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadValue(f"{_short(value)} is not a timestamp (ISO 8601)") from None
    # Supabase's ``timestamp without time zone`` columns hold UTC by convention.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def _to_uuid(value) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except ValueError:
        raise BadValue(f"{_short(value)} is not a UUID") from None


_CASTERS = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "text": _to_text,
    "date": _to_date,
    "timestamp": _to_timestamp,
    "uuid": _to_uuid,
}


def money_cents(value) -> int | None:
    """An amount held as ``numeric`` or text (``"1250000.50"``) in integer cents, exactly.

    Refused: more than two decimals that are not zeros, thousands separators, currency signs,
    exponents, floats that are not exact cents, and anything that is not a number.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadValue(f"{value!r} is a boolean, not an amount")
    if isinstance(value, int):
        return value * 100
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, decimal.Decimal):
        amount = value
        if not amount.is_finite():
            raise BadValue(f"{value} is not an amount")
    else:
        text = str(value).strip()
        if not _MONEY_TEXT.fullmatch(text):
            raise BadValue(f"{_short(value)} is not an amount (digits, at most two decimals)")
        amount = decimal.Decimal(text)
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise BadValue(f"{_short(value)} has more than two decimals")
    return int(cents)


def enum_value(values: dict[str, str], value) -> str | None:
    """The Hearth value the mapping's ``values`` table gives for ``value``; ``BadValue`` if it lists none."""
    if value is None:
        return None
    key = str(value)
    if key not in values:
        raise BadValue(f"{_short(value)} is not one of the mapped values ({', '.join(sorted(values))})")
    return values[key]


def json_path(path: str, value):
    """The value at ``path`` (dot-separated keys and list indexes: ``"size.sqft"``, ``"rooms.0.name"``).

    A jsonb value arrives parsed; a text column holding JSON is parsed first. A missing step gives None.
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadValue(f"{_short(value)} is not JSON") from None
    for step in path.split("."):
        if isinstance(value, dict):
            value = value.get(step)
        elif isinstance(value, list) and step.lstrip("-").isdigit() and -len(value) <= int(step) < len(value):
            value = value[int(step)]
        else:
            return None
        if value is None:
            return None
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- Supabase Storage references -----------------------------------------------------------

_STORAGE_PATH = re.compile(r"^/storage/v1/(?:object|render/image)/(?:(public|sign|authenticated)/)?([^/]+)/(.+)$")


def storage_reference(value: str) -> tuple[str, str] | None:
    """``(bucket, object name)`` a Supabase Storage reference points at, or None if it is none.

    Understood: public URLs (``https://<ref>.supabase.co/storage/v1/object/public/<bucket>/<path>``),
    signed URLs (``/object/sign/...?token=...``; the token is dropped), authenticated URLs
    (``/object/authenticated/...``), image-transform URLs (``/render/image/...``), the same paths on a
    custom domain or without a host, and bare ``<bucket>/<path>`` paths. Percent-escapes are decoded,
    so a name with spaces or non-Latin letters matches the object's ``name``.
    """
    text = value.strip()
    if not text:
        return None
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https") or text.startswith("/"):
        match = _STORAGE_PATH.match(parsed.path)
        if match is None:
            return None
        bucket, name = unquote(match.group(2)), unquote(match.group(3))
    elif parsed.scheme or "/" not in text:
        return None
    else:
        bucket, _, name = unquote(parsed.path).partition("/")
    name = name.lstrip("/")
    if not bucket or not name or ".." in name.split("/"):
        return None
    return bucket, name


__all__ = [
    "CASTS",
    "TRANSFORMS",
    "BadValue",
    "cast",
    "enum_value",
    "json_path",
    "money_cents",
    "storage_reference",
]
