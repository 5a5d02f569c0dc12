"""What ``make test`` runs: provide the services the tests need, then pytest.

Each service is one function that returns the environment variables telling the
tests where it is, using the machine's own server when one answers and starting
an embedded one (stopped afterwards) otherwise:

* ``TEST_DATABASE_URL``: a superuser URL; the tests create a database per process.
* ``TEST_REDIS_URL``: a Redis database the tests may write to (under key prefixes).
* ``TEST_CLAMD_URL``: a clamd with the project's test signature database (EICAR);
  Debian's clamav-daemon is installed first when ``clamd`` is missing (ops/clamd.py).
* ``TEST_S3_ENDPOINT``: an S3-compatible server on loopback (moto's threaded server, in this process).
* ``TEST_PROVIDERS_URL``: a stand-in for SendGrid and Twilio that records what it was
  sent (ops/provider_stub.py), on a free loopback port, always our own.
* ``TEST_CHROMIUM``: headless Chromium for the browser tests; Debian's ``chromium`` is
  installed first when missing (ops/chromium.py). When it truly cannot be,
  ``TEST_CHROMIUM_UNAVAILABLE`` says why and those tests skip with that reason.
* ``TEST_PROMTOOL``: Prometheus's ``promtool``, which checks ops/prometheus/; Debian's
  ``prometheus`` package is installed first when missing (the same way; nothing is started).
  When it cannot be, ``TEST_PROMTOOL_UNAVAILABLE`` says why and those tests skip.
* ``TEST_COMPOSE``: ``docker-compose``, which checks docker-compose.yml, when docker has no
  ``compose`` plugin; Debian's ``docker-compose`` is installed first when missing (the same way).

Adding a service (clamd, an S3 server, ...) is one more function in ``SERVICES``.
Embedded servers keep their files in ``<var_dir>/test``, apart from the
development data. ``python -m ops.testrun [pytest args]`` exits with pytest's
status; 5 (no tests collected) is a failure like any other non-zero status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

from settings import ROOT, Settings, SettingsError

LOCAL_POSTGRES = ("127.0.0.1", 5432)
LOCAL_REDIS = ("127.0.0.1", 6379)
# Not the development Redis's port, so tests never flush a running `hearth run`'s data.
EMBEDDED_TEST_REDIS_PORT = 6392
PYTEST_NO_TESTS_COLLECTED = 5


@dataclasses.dataclass
class Context:
    """What a service function gets: where to keep files, and where to register its cleanup."""

    settings: Settings
    home: pathlib.Path
    cleanup: contextlib.ExitStack

    def note(self, text: str) -> None:
        print(f"testrun: {text}", file=sys.stderr, flush=True)


def postgres(ctx: Context) -> dict[str, str]:
    from ops.devservices import reachable, start_postgres

    if reachable(*LOCAL_POSTGRES):
        host, port = LOCAL_POSTGRES
        ctx.note(f"PostgreSQL at {host}:{port}")
        return {"TEST_DATABASE_URL": f"postgresql://postgres@{host}:{port}/postgres"}
    server = start_postgres(ctx.home / "pg")
    ctx.cleanup.callback(server.stop)
    ctx.note(f"embedded PostgreSQL at {server.url}")
    return {"TEST_DATABASE_URL": server.url}


def redis(ctx: Context) -> dict[str, str]:
    from ops.devservices import reachable, start_redis

    if reachable(*LOCAL_REDIS):
        host, port = LOCAL_REDIS
        ctx.note(f"Redis at {host}:{port}")
        return {"TEST_REDIS_URL": f"redis://{host}:{port}/0"}
    server = start_redis(ctx.home / "redis", EMBEDDED_TEST_REDIS_PORT)
    ctx.cleanup.callback(server.stop)
    ctx.note(f"embedded Redis at {server.url}")
    return {"TEST_REDIS_URL": server.url}


def clamd(ctx: Context) -> dict[str, str]:
    # Always our own: the machine's clamd (if any) has other signatures than the tests expect.
    from ops.clamd import ClamdError, start_clamd

    try:
        server = start_clamd(ctx.home / "clamd", log=ctx.note)
    except ClamdError as exc:
        raise _service_error(f"clamd: {exc}") from None
    ctx.cleanup.callback(server.stop)
    ctx.note(f"clamd at {server.url}")
    return {"TEST_CLAMD_URL": server.url}


def s3(ctx: Context) -> dict[str, str]:
    from ops.s3server import S3ServerError, start_s3_server

    try:
        server = start_s3_server()
    except S3ServerError as exc:
        raise _service_error(f"S3 server: {exc}") from None
    ctx.cleanup.callback(server.stop)
    ctx.note(f"S3-compatible server (moto) at {server.endpoint}")
    return {"TEST_S3_ENDPOINT": server.endpoint}


def providers(ctx: Context) -> dict[str, str]:
    # A thread of this process: it lives exactly as long as the test run.
    from ops.provider_stub import start_provider_stub

    stub = start_provider_stub()
    ctx.cleanup.callback(stub.stop)
    ctx.note(f"SendGrid/Twilio/Stripe recorder at {stub.url}")
    return {"TEST_PROVIDERS_URL": stub.url}


def chromium(ctx: Context) -> dict[str, str]:
    from ops.chromium import ChromiumError, ensure_installed

    try:
        binary = ensure_installed(log=ctx.note)
    except ChromiumError as exc:
        ctx.note(f"no chromium, the browser tests will skip: {exc}")
        return {"TEST_CHROMIUM_UNAVAILABLE": str(exc)}
    ctx.note(f"chromium at {binary}")
    return {"TEST_CHROMIUM": binary}


def _debian_tool(ctx: Context, binary: str, package: str, *, env: str, skips: str) -> dict[str, str]:
    """``binary`` on PATH, Debian's ``package`` installed first when it is missing; ``{env: path}``.

    When it cannot be installed, ``{env}_UNAVAILABLE`` says why and the tests that need it skip.
    """
    import shutil

    from ops.debian import InstallError, apt_install

    found = shutil.which(binary)
    if not found:
        ctx.note(f"{binary} not found: installing Debian's {package} package with apt-get (once per machine)")
        try:
            apt_install(package, recommends=False)
        except InstallError as exc:
            ctx.note(f"no {binary}, {skips} will skip: {exc}")
            return {f"{env}_UNAVAILABLE": str(exc)}
        found = shutil.which(binary)
        if not found:
            return {f"{env}_UNAVAILABLE": f"the {package} package was installed but {binary} is not on PATH"}
    ctx.note(f"{binary} at {found}")
    return {env: found}


def promtool(ctx: Context) -> dict[str, str]:
    return _debian_tool(ctx, "promtool", "prometheus", env="TEST_PROMTOOL", skips="the alert rule checks")


def compose(ctx: Context) -> dict[str, str]:
    """``docker compose config`` checks docker-compose.yml: the plugin if docker has it, else docker-compose."""
    import shutil

    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return {}
    return _debian_tool(ctx, "docker-compose", "docker-compose", env="TEST_COMPOSE", skips="the compose file check")


def _service_error(message: str) -> Exception:
    from ops.devservices import ServiceError

    return ServiceError(message)


SERVICES: list[Callable[[Context], dict[str, str]]] = [
    postgres,
    redis,
    clamd,
    s3,
    providers,
    chromium,
    promtool,
    compose,
]


def environment_for_tests(exports: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    # The tests name their databases themselves; a developer's DATABASE_URL /
    # REDIS_URL must never be where a test writes.
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    env.update(exports, HEARTH_ENV="test")
    return env


def run_pytest(args: list[str], env: dict[str, str]) -> int:
    process = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            # pytest got the same Ctrl-C from the terminal and is finishing its report.
            continue


def main(argv: list[str] | None = None) -> int:
    from ops.devservices import ServiceError

    args = sys.argv[1:] if argv is None else argv
    try:
        settings = Settings.from_env(env="test")
    except SettingsError as exc:
        print(f"testrun: {exc}", file=sys.stderr)
        return 1
    with contextlib.ExitStack() as cleanup:
        ctx = Context(settings, pathlib.Path(settings.var_dir).resolve() / "test", cleanup)
        exports: dict[str, str] = {}
        try:
            for service in SERVICES:
                exports.update(service(ctx))
        except ServiceError as exc:
            print(f"testrun: {exc}", file=sys.stderr)
            return 1
        status = run_pytest(args, environment_for_tests(exports))
    if status == PYTEST_NO_TESTS_COLLECTED:
        print("testrun: pytest collected no tests; that is a failure", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
