"""Schemathesis over the whole OpenAPI document, against a real gunicorn serving the API.

Every operation is fuzzed twice: without a token, and with the token of a verified
seller (who may create listings, so more of the API answers something other than
403). The run fails on a 5xx, a response that breaks its schema, a status, content
type or header the document does not declare. Examples are bounded and generated
deterministically, so a failure reproduces on the next run; the report names it.
"""
from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

from tests.factories import PASSWORD, make_user
from tests.integration.processes import BIN, start_gunicorn
from tests.tasks.live import login

pytestmark = pytest.mark.integration

CHECKS = ("not_a_server_error,response_schema_conformance,status_code_conformance,"
          "content_type_conformance,response_headers_conformance")
# Both runs over the whole document (86 operations, ~4,000 cases each) take about two minutes
# on two busy cores with this many cases per operation and phase; raise it to fuzz harder.
MAX_EXAMPLES = int(os.environ.get("HEARTH_FUZZ_EXAMPLES", "6"))
# Operations that end the session whose token the authenticated run uses.
SESSION_ENDING = ("Logout_post", "LogoutAll_post", "MyPassword_post", "ResetPassword_post", "MySessions_delete_item")
# Limits the fuzzer would hit in its first seconds; what it checks is the answer, not the limit.
UNLIMITED = {"RATE_LIMIT_DEFAULT": "1000000/minute", "RATE_LIMIT_AUTH": "1000000/minute",
             "RATE_LIMIT_CONTACT": "1000000/hour", "LOGIN_LOCKOUT_THRESHOLD": "1000000",
             "LOGIN_IP_LOCKOUT_THRESHOLD": "1000000"}


@pytest.fixture
def server(live_env, live_db, logs, procs):
    env = {**live_env, **UNLIMITED}
    web, base = start_gunicorn(env, logs, workers=2, config=True)
    procs.append(web)
    return base


def _schemathesis(base: str, report: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    argv = [str(BIN / "st"), "run", f"{base}/v1/openapi.json", "--checks", CHECKS,
            "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
            "--phases", "examples,coverage,fuzzing", "--workers", "2", "--no-shrink",
            "--request-timeout", "10", "--no-color",
            "--suppress-health-check", "all", "--report", "junit", "--report-dir", str(report), *args]
    # Run from the report folder: schemathesis keeps its own files (.schemathesis/) where it runs.
    report.mkdir(parents=True)
    return subprocess.run(argv, cwd=report, capture_output=True, text=True, timeout=600)


def _verdict(run: subprocess.CompletedProcess) -> str:
    return f"schemathesis exited {run.returncode}\n{run.stdout[-20000:]}\n{run.stderr[-5000:]}"


def test_every_operation_without_a_token_keeps_to_the_document(server, tmp_path):
    run = _schemathesis(server, tmp_path / "anonymous")
    assert run.returncode == 0, _verdict(run)


def test_every_operation_with_a_verified_sellers_token_keeps_to_the_document(server, tmp_path):
    user = make_user(role="seller")
    headers = login(server, user.email, PASSWORD)
    excluded = [arg for op in SESSION_ENDING for arg in ("--exclude-operation-id", op)]
    run = _schemathesis(server, tmp_path / "seller", "--header", f"Authorization:{headers['Authorization']}",
                        *excluded)
    assert run.returncode == 0, _verdict(run)
