"""JSON logs on stderr, one object per line, with whatever ``extra=`` a call passes."""
from __future__ import annotations

import datetime
import logging
import sys

import msgspec

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return _encoder.encode(entry).decode("utf-8", "replace")
        except (TypeError, msgspec.EncodeError):
            # Something in ``extra=`` is not JSON: log its repr rather than lose the line.
            return _encoder.encode({key: value if isinstance(value, (str, int, float, bool, type(None)))
                                    else repr(value) for key, value in entry.items()}).decode("utf-8", "replace")


def configure_logging(settings, stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if settings.debug else logging.INFO)
    logging.getLogger("peewee").setLevel(logging.WARNING)
