"""The production image, docker-compose.yml and the CI workflows, checked as far as this machine allows:
the files' structure always; ``docker compose config`` and the built image's packages when docker can."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import threading
import time

import pytest
import yaml

from ops import health
from settings import ROOT, Settings

DOCKERFILE = (ROOT / "ops" / "Dockerfile").read_text()
INSTRUCTIONS = "\n".join(line for line in DOCKERFILE.splitlines() if not line.lstrip().startswith("#"))
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
HEARTH_SERVICES = ("web", "relay", "worker", "beat", "flower", "metrics")
TEST_TOOLS = ("pytest", "hypothesis", "moto", "ruff", "mypy", "py-spy")
COMPOSE_ENV = {
    "PUBLIC_URL": "https://hearth.example",
    "POSTGRES_PASSWORD": "password",
    "SECRET_KEY": "k" * 40,
    "JWT_PRIVATE_KEYS": "key",
    "SENDGRID_API_KEY": "key",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "key",
    "TWILIO_ACCOUNT_SID": "sid",
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_FROM": "+15550000000",
    "FLOWER_PASSWORD": "flower-password",
    "S3_PUBLIC_ENDPOINT": "https://files.hearth.example",
    "MINIO_ROOT_PASSWORD": "minio-password",
}


def lock_names(name: str) -> set[str]:
    lines = (ROOT / name).read_text().splitlines()
    return {line.split("==")[0].strip().lower() for line in lines if "==" in line and not line.startswith("#")}


def workflow(name: str) -> dict:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps_running(job: dict, text: str) -> list[dict]:
    return [step for step in job["steps"] if text in step.get("run", "")]


# --------------------------------------------------------------------------- image


def test_the_image_installs_the_runtime_lock_only_and_the_lock_has_no_test_tools():
    installs = re.findall(r"pip install[^\n\\]*", DOCKERFILE)
    assert "pip install -r requirements.lock" in installs
    assert "requirements-dev.lock" not in INSTRUCTIONS and ".[dev]" not in INSTRUCTIONS
    runtime, dev = lock_names("requirements.lock"), lock_names("requirements-dev.lock")
    assert {tool for tool in TEST_TOOLS if tool in dev} == set(TEST_TOOLS)  # the check below can fail
    assert runtime.isdisjoint(TEST_TOOLS)


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck_and_a_matching_pg_dump():
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert DOCKERFILE.index(f"USER {users[-1]}") > DOCKERFILE.rindex("pip install")
    assert re.search(r'^HEALTHCHECK .*\n\s+CMD \["hearth", "health", "web"\]', DOCKERFILE, re.M)
    pg_major = re.search(r"^ARG PG_MAJOR=(\d+)", DOCKERFILE, re.M).group(1)
    assert "postgresql-client-${PG_MAJOR}" in DOCKERFILE
    # pg_dump refuses a server newer than itself: the client and compose's server are one version.
    assert COMPOSE["services"]["postgres"]["image"] == f"postgres:{pg_major}"
    assert workflow("ci.yml")["jobs"]["test"]["services"]["postgres"]["image"] == f"postgres:{pg_major}"


@pytest.mark.skipif(not shutil.which("docker"), reason="no docker client on this machine")
def test_the_built_image_holds_no_test_tools():
    if subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode != 0:
        pytest.skip("the docker daemon is not running here, so the image cannot be built")
    build = subprocess.run(
        ["docker", "build", "-q", "-f", "ops/Dockerfile", "-t", "hearth:test", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if build.returncode != 0:
        pytest.skip(f"the image cannot be built here (offline?): {build.stderr.strip()[-300:]}")
    listed = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "pip", "hearth:test", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert installed.isdisjoint(TEST_TOOLS)


# --------------------------------------------------------------------------- compose


def test_compose_runs_the_stores_every_hearth_process_and_prometheus():
    services = COMPOSE["services"]
    for store in ("postgres", "redis", "clamav", "minio", "prometheus"):
        assert store in services
    for name in HEARTH_SERVICES:
        service = services[name]
        assert service["image"] == "hearth:latest" and service["build"]["dockerfile"] == "ops/Dockerfile"
        assert service["healthcheck"]["test"] == ["CMD", "hearth", "health", name], name
        assert name in health.PROCESSES
    assert services["release"]["command"] == ["hearth", "db", "upgrade"]
    assert "./ops/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    environment = services["web"]["environment"]
    assert {"BACKUP_TARGET", "BACKUP_SCHEDULE", "BACKUP_KEEP"} <= set(environment)


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin), else the standalone ``docker-compose``; None when neither is here."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_compose_config_validates():
    command = compose_command()
    if command is None:
        # ops/testrun.py installs docker-compose when neither is here; it says why when it could not.
        pytest.skip(os.environ.get("TEST_COMPOSE_UNAVAILABLE", "neither docker compose nor docker-compose is here"))
    done = subprocess.run(
        [*command, "config", "--quiet"],
        cwd=ROOT,
        env=dict(os.environ, **COMPOSE_ENV),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- CI


def test_ci_lints_and_tests_through_ci_run_against_service_containers_and_builds_the_image():
    ci = workflow("ci.yml")
    assert "pull_request" in ci["on"] and "push" in ci["on"]
    test = ci["jobs"]["test"]
    assert set(test["services"]) == {"postgres", "redis"}
    assert "5432:5432" in test["services"]["postgres"]["ports"] and "6379:6379" in test["services"]["redis"]["ports"]
    assert [step["run"].strip() for step in steps_running(test, ".ci/run")] == [".ci/run"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # which is `make lint` first, then the suite
    assert "test: lint" in (ROOT / "Makefile").read_text()
    image = ci["jobs"]["image"]
    [build] = [step for step in image["steps"] if step.get("uses", "").startswith("docker/build-push-action")]
    assert build["with"]["file"] == "ops/Dockerfile" and build["with"]["push"] is False
    assert steps_running(image, "pip hearth:ci list") and steps_running(image, "docker compose config")


def test_release_builds_tags_and_pushes_the_image_on_a_version_tag():
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*.*.*"]}}
    steps = release["jobs"]["image"]["steps"]
    login = next(step for step in steps if step.get("uses", "").startswith("docker/login-action"))
    assert "secrets." in login["with"]["password"]
    build = next(step for step in steps if step.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["file"] == "ops/Dockerfile" and build["with"]["push"] is True
    meta = next(step for step in steps if step.get("id") == "meta")
    assert "type=semver,pattern={{version}}" in meta["with"]["tags"]


# --------------------------------------------------------------------------- hearth health


class _Healthz(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_health_asks_the_process_itself(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        alive = Settings.from_env(
            {"HEARTH_ENV": "test", "HEARTH_VAR_DIR": str(tmp_path), "WEB_BIND": f"127.0.0.1:{port}"}
        )
        assert health.check("web", alive) == f"http://127.0.0.1:{port}/healthz"
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(health.Unhealthy, match="refused"):
        health.check("web", alive)


def test_beat_is_healthy_while_its_schedule_file_is_fresh(tmp_path):
    settings = Settings.from_env({"HEARTH_ENV": "test", "HEARTH_VAR_DIR": str(tmp_path)})
    with pytest.raises(health.Unhealthy, match="no beat schedule"):
        health.check("beat", settings)
    schedule = tmp_path / "celerybeat-schedule"
    schedule.write_bytes(b"x")
    assert health.check("beat", settings) == str(schedule)
    stale = time.time() - health.BEAT_STALE_AFTER - 60
    os.utime(schedule, (stale, stale))
    with pytest.raises(health.Unhealthy, match="last written"):
        health.check("beat", settings)
