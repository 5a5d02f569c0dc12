"""Turning one environment variable's text into the value a setting holds."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_field(f: dataclasses.Field[Any], raw: str) -> Any:
    """``raw`` as the type ``f`` declares (annotations are strings: settings use postponed evaluation)."""
    kind = f.type
    if kind == "bool":
        return parse_bool(raw)
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"not an integer: {raw!r}") from None
    if kind == "pathlib.Path":
        return pathlib.Path(raw)
    if isinstance(kind, str) and kind.startswith("tuple"):
        return parse_csv(raw)
    return raw


RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(text: str) -> tuple[int, int]:
    """Parse ``"20/minute"`` into ``(20, 60)`` (count, window seconds)."""
    try:
        count, unit = text.split("/", 1)
        return int(count), RATE_UNITS[unit.strip().rstrip("s")]
    except (ValueError, KeyError):
        raise ValueError(f"not a rate like '20/minute': {text!r}") from None
