"""JSON logs on stderr, one object per line, with whatever ``extra=`` a call passes."""

from __future__ import annotations

import datetime
import logging
import sys
from typing import Any, TextIO

import msgspec

from services.log_redaction import redact_library_logs
from settings import Settings

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
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
            return _encoder.encode(
                {
                    key: value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
                    for key, value in entry.items()
                }
            ).decode("utf-8", "replace")


class AccessLog:
    """The one line per request, in the same JSON shape, written straight to the log stream.

    It is the hottest log call by far, and the logging module's record
    machinery (a LogRecord, level checks, ``extra`` merging) cost more than the
    rest of a cached ``GET /v1/me``. Without ``configure_logging`` (tests, other
    embedders) it goes through the ordinary ``hearth.access`` logger.
    """

    def __init__(self) -> None:
        self.logger = logging.getLogger("hearth.access")

    def write(self, fields: dict[str, Any]) -> None:
        handler = _configured_handler()
        if handler is None:
            self.logger.info("request", extra=fields)
            return
        if not self.logger.isEnabledFor(logging.INFO):
            return
        line = _encoder.encode(
            {
                "at": datetime.datetime.now(datetime.UTC).isoformat(),
                "level": "info",
                "logger": "hearth.access",
                "event": "request",
                **fields,
            }
        )
        handler.acquire()
        try:
            handler.stream.write(line.decode("utf-8", "replace") + "\n")
            handler.stream.flush()
        finally:
            handler.release()


class JsonLogHandler(logging.StreamHandler[TextIO]):
    """The root logger's handler once ``configure_logging`` ran: JSON lines on one stream."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(JsonFormatter())


def _configured_handler() -> JsonLogHandler | None:
    """The handler ``configure_logging`` gave the root logger, while the root logger still has it."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, JsonLogHandler):
            return handler
    return None


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    handler = JsonLogHandler(stream or sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if settings.debug else logging.INFO)
    logging.getLogger("peewee").setLevel(logging.WARNING)
    redact_library_logs()
