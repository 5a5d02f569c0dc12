"""Logs: one JSON object per line on stderr from every process, or a readable console format for people.

``configure_logging(settings, process)`` runs once in each composition root
(``web``, ``relay``, ``worker``, ``beat``, ``metrics``, ``cli``). Every line,
whether logged through structlog or the standard library (ours, gunicorn,
Celery, uvicorn, peewee), goes through the same processors and carries
``time`` (ISO 8601, UTC), ``level``, ``process``, ``logger``, ``event`` (the
message), whatever ``extra=`` the call passed, and the context bound with
``structlog.contextvars`` (a request's ``request_id``, a job's ``job_id``).
``LOG_FORMAT`` picks the renderer: ``json`` (production) or ``console``
(``hearth run``; coloured on a terminal). Payment secrets are scrubbed from
every message (``services.log_redaction``), from the libraries' records first.
"""

from __future__ import annotations

import contextlib
import datetime
import faulthandler
import logging
import sys
from typing import Any, TextIO

import msgspec
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from services.log_redaction import redact, redact_library_logs
from settings import Settings

PROCESS_KINDS = ("web", "relay", "worker", "beat", "metrics", "cli")
# Libraries that install handlers of their own: their records go up to ours instead.
_ADOPTED_LOGGERS = ("gunicorn", "gunicorn.error", "gunicorn.access", "uvicorn", "uvicorn.error", "uvicorn.access")
_encoder = msgspec.json.Encoder(enc_hook=repr)
_process = "cli"


def _stamp(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    created = record.created if record is not None else None
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC) if created else datetime.datetime.now(datetime.UTC)
    event_dict.setdefault("time", moment.isoformat())
    return event_dict


def _process_kind(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("process", _process)
    return event_dict


def _scrub(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    # Another handler's formatter may have left the formatted message on the record: it is ``event``.
    event_dict.pop("message", None)
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = redact(event)
    return event_dict


# What every LogRecord has; anything else on a record came from ``extra=``. uvicorn's
# ``color_message`` is the message again with terminal colour codes: not context.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
# The line's own keys: an ``extra=`` of the same name keeps its value under ``<name>_``.
_LINE_KEYS = frozenset({"event", "time", "level", "logger", "process"})


def _extras(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    if record is not None:
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                event_dict[f"{key}_" if key in _LINE_KEYS else key] = value
    return event_dict


def _render_json(logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
    try:
        return _encoder.encode(event_dict).decode("utf-8", "replace")
    except (TypeError, msgspec.EncodeError):
        # Something in ``extra=`` is not JSON: log its repr rather than lose the line.
        return _encoder.encode(
            {
                key: value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
                for key, value in event_dict.items()
            }
        ).decode("utf-8", "replace")


def _shared(for_foreign: bool) -> list[Processor]:
    chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _stamp,
        _process_kind,
    ]
    if for_foreign:
        chain.append(_extras)
    return chain


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """Formats a standard library record (or a structlog one) as one JSON line."""

    def __init__(self) -> None:
        super().__init__(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _scrub,
                structlog.processors.format_exc_info,
                _render_json,
            ],
            foreign_pre_chain=_shared(for_foreign=True),
        )


class ConsoleFormatter(structlog.stdlib.ProcessorFormatter):
    """The same lines, for people: aligned, coloured when ``colors``."""

    def __init__(self, colors: bool) -> None:
        super().__init__(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _scrub,
                structlog.dev.ConsoleRenderer(colors=colors, timestamp_key="time"),
            ],
            foreign_pre_chain=_shared(for_foreign=True),
        )


class LogHandler(logging.StreamHandler[TextIO]):
    """The root logger's one handler once ``configure_logging`` ran."""

    def __init__(self, stream: TextIO, log_format: str, colors: str = "auto") -> None:
        super().__init__(stream)
        self.json = log_format == "json"
        terminal = bool(getattr(stream, "isatty", lambda: False)())
        colors_on = colors == "always" or (colors == "auto" and terminal)
        self.setFormatter(JsonFormatter() if self.json else ConsoleFormatter(colors_on))


class AccessLog:
    """The one line per request, in the same JSON shape, written straight to the log stream.

    It is the hottest log call by far, and the logging module's record
    machinery (a LogRecord, level checks, ``extra`` merging) cost more than the
    rest of a cached ``GET /v1/me``. Its fields are the request's context
    already (id, route, status); with the console format, or without
    ``configure_logging`` (tests, other embedders), it goes through the
    ordinary ``hearth.access`` logger.
    """

    def __init__(self) -> None:
        self.logger = logging.getLogger("hearth.access")

    def write(self, fields: dict[str, Any]) -> None:
        handler = _configured_handler()
        if handler is None or not handler.json:
            self.logger.info("request", extra=fields)
            return
        if not self.logger.isEnabledFor(logging.INFO):
            return
        line = _encoder.encode(
            {
                "time": datetime.datetime.now(datetime.UTC).isoformat(),
                "level": "info",
                "process": _process,
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


def _configured_handler() -> LogHandler | None:
    """The handler ``configure_logging`` gave the root logger, while the root logger still has it."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LogHandler):
            return handler
    return None


def configure_logging(settings: Settings, process: str = "cli", stream: TextIO | None = None) -> None:
    """Send every log line of this process (``process``: one of ``PROCESS_KINDS``) to ``stream`` (stderr)."""
    global _process  # noqa: PLW0603 - one process kind per process, set by its composition root
    if process not in PROCESS_KINDS:
        raise ValueError(f"unknown process kind {process!r}")
    _process = process
    # A crash in native code (a segfault, an abort) leaves the Python stack of every thread on stderr.
    # Not when ``stream`` is one a caller captures: faulthandler writes to a file descriptor.
    if stream is None and not faulthandler.is_enabled():
        with contextlib.suppress(AttributeError, OSError, ValueError):  # a stderr without a file descriptor
            faulthandler.enable(all_threads=True)
    handler = LogHandler(stream or sys.stderr, settings.log_format, settings.log_colors)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if settings.debug else logging.INFO)
    logging.getLogger("peewee").setLevel(logging.WARNING)
    for name in _ADOPTED_LOGGERS:
        adopted = logging.getLogger(name)
        adopted.handlers[:] = []
        adopted.propagate = True
    structlog.configure(
        processors=[*_shared(for_foreign=False), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    redact_library_logs()


__all__ = ["PROCESS_KINDS", "AccessLog", "ConsoleFormatter", "JsonFormatter", "LogHandler", "configure_logging"]
