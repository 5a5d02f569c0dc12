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

CHECKS = (
    "not_a_server_error,response_schema_conformance,status_code_conformance,"
    "content_type_conformance,response_headers_conformance"
)
# Both runs over the whole document (86 operations, ~5,000 cases each) take about a minute and a
# half on two busy cores with this many cases per operation and phase; raise it to fuzz harder.
MAX_EXAMPLES = int(os.environ.get("HEARTH_FUZZ_EXAMPLES", "10"))
# Operations that end the session whose token the authenticated run uses.
SESSION_ENDING = ("Logout_post", "LogoutAll_post", "MyPassword_post", "ResetPassword_post", "MySessions_delete_item")
# Limits the fuzzer would hit in its first seconds; what it checks is the answer, not the limit.
UNLIMITED = {
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_AUTH": "1000000/minute",
    "RATE_LIMIT_CONTACT": "1000000/hour",
    "LOGIN_LOCKOUT_THRESHOLD": "1000000",
    "LOGIN_IP_LOCKOUT_THRESHOLD": "1000000",
}


@pytest.fixture
def server(live_env, live_db, logs, procs):
    env = {**live_env, **UNLIMITED}
    web, base = start_gunicorn(env, logs, workers=2, config=True)
    procs.append(web)
    return base


def _schemathesis(base: str, report: pathlib.Path, *args: str) -> subprocess.Popen:
    # One worker per run: schemathesis's threads trip over a CPython 3.11 bug in ast
    # ("AST constructor recursion depth mismatch") when hypothesis describes a strategy.
    # The two runs go side by side in processes of their own instead.
    argv = [
        str(BIN / "st"),
        "run",
        f"{base}/v1/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "10",
        "--no-color",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-dir",
        str(report),
        *args,
    ]
    # Run from the report folder: schemathesis keeps its own files (.schemathesis/) where it runs.
    report.mkdir(parents=True)
    with open(report / "output.txt", "wb") as output:
        return subprocess.Popen(argv, cwd=report, stdout=output, stderr=subprocess.STDOUT)


def test_every_operation_keeps_to_the_document_with_and_without_a_token(server, tmp_path):
    user = make_user(role="seller")
    token = login(server, user.email, PASSWORD)["Authorization"]
    excluded = [arg for op in SESSION_ENDING for arg in ("--exclude-operation-id", op)]
    runs = {
        "without a token": _schemathesis(server, tmp_path / "anonymous"),
        "as a verified seller": _schemathesis(
            server, tmp_path / "seller", "--header", f"Authorization:{token}", *excluded
        ),
    }
    failed = {}
    try:
        for (name, run), report in zip(runs.items(), ("anonymous", "seller"), strict=True):
            if run.wait(timeout=600) != 0:
                output = (tmp_path / report / "output.txt").read_text(errors="replace")
                failed[name] = f"schemathesis exited {run.returncode}\n{output[-15000:]}"
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    assert not failed, "\n\n".join(f"=== {name}\n{text}" for name, text in failed.items())
