"""Log lines: one JSON object per line (or a readable console line), the same shape from every logger."""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import structlog

from services.logging import configure_logging
from settings import Settings


@pytest.fixture
def configured(tmp_path):
    """``configure_logging`` into a buffer; the test process's logging is put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    adopted = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate) for name in ("gunicorn.error",)
    }

    def configure(process: str, log_format: str = "json") -> io.StringIO:
        stream = io.StringIO()
        settings = Settings.from_env({"HEARTH_ENV": "test", "HEARTH_VAR_DIR": str(tmp_path), "LOG_FORMAT": log_format})
        configure_logging(settings, process, stream)
        return stream

    yield configure
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    for name, (handlers, propagate) in adopted.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_stdlib_and_structlog_lines_share_one_json_shape_with_the_bound_context(configured):
    stream = configured("worker")
    structlog.contextvars.bind_contextvars(request_id="req-1", job_id="job-9")
    logging.getLogger("hearth.tasks").warning("job failed after its last attempt", extra={"attempt": 5})
    structlog.get_logger("hearth.search").info("index rebuilt", listings=12)
    structlog.contextvars.clear_contextvars()
    logging.getLogger("celery.worker").info("ready")

    first, second, third = lines(stream)
    for line in (first, second, third):
        assert line["process"] == "worker" and line["time"].endswith("+00:00")
    assert first == first | {
        "level": "warning",
        "logger": "hearth.tasks",
        "event": "job failed after its last attempt",
        "attempt": 5,
        "request_id": "req-1",
        "job_id": "job-9",
    }
    assert second == second | {"level": "info", "logger": "hearth.search", "event": "index rebuilt", "listings": 12}
    assert second["request_id"] == "req-1"
    assert "request_id" not in third and third["logger"] == "celery.worker"


def test_an_extra_named_like_a_key_of_the_line_does_not_replace_it(configured):
    stream = configured("worker")
    logging.getLogger("hearth.tasks").warning("could not publish job event", extra={"event": "job.started"})
    (line,) = lines(stream)
    assert (line["event"], line["event_"]) == ("could not publish job event", "job.started")


def test_uvicorns_coloured_copy_of_the_message_is_not_logged_as_context(configured):
    stream = configured("relay")
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"}
    )
    (line,) = lines(stream)
    assert line["event"] == "Started server process [42]" and "color_message" not in line


def test_an_exception_is_one_line_with_its_traceback(configured):
    stream = configured("web")
    try:
        raise ValueError("bad value")
    except ValueError:
        logging.getLogger("hearth.api").exception("unhandled error")
    (line,) = lines(stream)
    assert line["event"] == "unhandled error" and "ValueError: bad value" in line["exception"]


def test_gunicorns_own_logger_goes_through_the_same_format(configured):
    gunicorn = logging.getLogger("gunicorn.error")
    gunicorn.addHandler(logging.StreamHandler(io.StringIO()))  # what gunicorn installs for itself
    gunicorn.propagate = False
    stream = configured("web")
    gunicorn.info("Booting worker with pid: %s", 42)
    (line,) = lines(stream)
    assert line["logger"] == "gunicorn.error" and line["event"] == "Booting worker with pid: 42"


def test_payment_secrets_are_scrubbed_from_any_message(configured):
    stream = configured("worker")
    logging.getLogger("hearth.payments").info("intent pi_123_secret_abcDEF456 created with sk_test_0123456789")
    (line,) = lines(stream)
    assert "secret_abc" not in line["event"] and "sk_test_0123" not in line["event"]
    assert line["event"].count("[redacted]") == 2


def test_the_console_format_is_for_people(configured):
    stream = configured("cli", "console")
    logging.getLogger("hearth.ops").info("migrations applied", extra={"count": 3})
    text = stream.getvalue()
    assert "migrations applied" in text and "count=3" in text
    assert not text.lstrip().startswith("{")
    assert "\x1b[" not in text  # not a terminal: no colours


def test_console_colours_can_be_asked_for_where_the_stream_is_a_pipe():
    from services.logging import LogHandler

    stream = io.StringIO()
    handler = LogHandler(stream, "console", "always")
    handler.handle(logging.makeLogRecord({"name": "hearth.ops", "levelname": "INFO", "levelno": 20, "msg": "hi"}))
    assert "\x1b[" in stream.getvalue() and "hi" in stream.getvalue()


def test_an_unknown_log_format_or_process_kind_is_refused(tmp_path):
    from settings import SettingsError

    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.from_env({"HEARTH_ENV": "test", "HEARTH_VAR_DIR": str(tmp_path), "LOG_FORMAT": "xml"})
    settings = Settings.from_env({"HEARTH_ENV": "test", "HEARTH_VAR_DIR": str(tmp_path)})
    assert settings.log_format == "json"
    with pytest.raises(ValueError, match="process kind"):
        configure_logging(settings, "cron", io.StringIO())


def test_a_crash_in_native_code_leaves_every_threads_python_stack_on_stderr():
    """A segfault in a C extension kills a process without a Python exception; its stack must still reach the log."""
    program = (
        "import ctypes, threading, time\n"
        "from services.logging import configure_logging\n"
        "from settings import Settings\n"
        "configure_logging(Settings.from_env({'HEARTH_ENV': 'test'}), 'web')\n"
        "def waiting_here():\n"
        "    time.sleep(30)\n"
        "threading.Thread(target=waiting_here, daemon=True).start()\n"
        "time.sleep(0.2)\n"
        "def crashing_here():\n"
        "    ctypes.string_at(0)\n"
        "crashing_here()\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONFAULTHANDLER"}
    env["PYTHONPATH"] = str(pathlib.Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGSEGV, (done.returncode, done.stderr)
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert "crashing_here" in done.stderr and "waiting_here" in done.stderr
