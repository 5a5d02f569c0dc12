"""Tests and benchmarks start the relay with the Procfile's own flags (ops/relay_command.py)."""

from __future__ import annotations

import pytest

from ops.relay_command import relay_argv
from ops.supervisor import ProcfileError


def test_the_relay_command_is_the_procfiles_on_the_given_address():
    argv = relay_argv("/venv/bin/uvicorn", "127.0.0.1", 9123, "--log-level", "warning")
    assert argv[:2] == ["/venv/bin/uvicorn", "relay.app:app"]
    # The production limits come through unchanged, and the address is ours alone.
    assert argv[argv.index("--ws-max-size") + 1] == "65536"
    assert argv[argv.index("--ws") + 1] == "websockets-sansio"
    assert argv.count("--host") == argv.count("--port") == 1
    assert argv[argv.index("--host") + 1 : argv.index("--host") + 4] == ["127.0.0.1", "--port", "9123"]
    assert argv[-2:] == ["--log-level", "warning"]


def test_a_procfile_whose_relay_does_not_exec_uvicorn_is_refused(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("relay: python -m something\n")
    with pytest.raises(ProcfileError, match="does not exec uvicorn"):
        relay_argv("uvicorn", "127.0.0.1", 1, procfile=procfile)
