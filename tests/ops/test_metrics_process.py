"""The metrics process as the Procfile runs it: other processes' samples and scrape-time gauges on METRICS_BIND."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import httpx
import pytest

from settings import ROOT
from tests.integration.processes import free_port, wait_for


@pytest.fixture
def samples_dir(tmp_path):
    path = tmp_path / "metrics"
    path.mkdir()
    return path


def child_env(database, redis_url: str, samples_dir, var_dir, **extra) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL", "BROKER_URL", "HEARTH_TEST_METRICS_PID")
    }
    env.update(
        HEARTH_ENV="test",
        HEARTH_VAR_DIR=str(var_dir),
        DATABASE_URL=database,
        REDIS_URL=redis_url,
        PROMETHEUS_MULTIPROC_DIR=str(samples_dir),
        PYTHONPATH=str(ROOT),
        **extra,
    )
    return env


def test_the_metrics_process_serves_every_process_samples_and_the_queue_gauges(
    database, settings, samples_dir, var_dir
):
    port = free_port()
    env = child_env(database, settings.redis_url, samples_dir, var_dir, METRICS_BIND=f"127.0.0.1:{port}")
    # Another Hearth process (a worker, say) counts a job and exits: its samples stay in the directory.
    worker = "from services import metrics; metrics.observe_job('jobs.selftest', 'succeeded', 0.2)"
    subprocess.run([sys.executable, "-c", worker], env=env, check=True, timeout=60)

    server = subprocess.Popen(
        [sys.executable, "-m", "ops.cli", "metrics"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, what="the metrics process")
        page = httpx.get(f"{url}/metrics", timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
        text = page.text
        assert 'hearth_jobs_total{kind="jobs.selftest",outcome="succeeded"} 1.0' in text
        assert 'hearth_job_duration_seconds_count{kind="jobs.selftest"} 1.0' in text
        assert 'hearth_queue_oldest_job_age_seconds{queue="default"}' in text
        assert "hearth_search_index_lag_seconds" in text
        assert 'hearth_queue_depth{queue="scans"}' in text  # the Redis broker's list, read at the scrape
        assert httpx.get(f"{url}/v1/me", timeout=5).status_code == 404
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=20)
    lines = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    started = [line for line in lines if line["event"] == "serving /metrics"]
    assert started and started[0]["process"] == "metrics" and started[0]["level"] == "info"
    assert started[0]["bind"] == f"127.0.0.1:{port}"


def test_a_gunicorn_worker_that_exits_leaves_the_live_gauges(samples_dir, database, settings, var_dir):
    env = child_env(database, settings.redis_url, samples_dir, var_dir)
    code = "import os; from services import metrics; metrics.RELAY_CONNECTIONS.inc(); print(os.getpid())"
    pid = int(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout)
    assert list(samples_dir.glob(f"gauge_livesum_{pid}.db"))
    reap = f"from services import metrics; metrics.process_exited({pid})"
    subprocess.run([sys.executable, "-c", reap], env=env, check=True, timeout=60)
    assert not list(samples_dir.glob(f"gauge_livesum_{pid}.db"))


def test_hearth_run_gives_its_children_one_emptied_metrics_directory_and_console_logs(tmp_path, monkeypatch):
    from ops.supervisor import banner, child_environment, metrics_directory
    from services.metrics import reset_directory
    from settings import Settings

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.delenv("LOG_COLORS", raising=False)
    settings = Settings.from_env({"HEARTH_ENV": "development", "HEARTH_VAR_DIR": str(tmp_path)})
    urls = {"DATABASE_URL": "postgresql://127.0.0.1/hearth", "REDIS_URL": "redis://127.0.0.1:6379/0"}
    env = child_environment(settings, urls)
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str((tmp_path / "metrics").resolve()) == str(metrics_directory(settings))
    assert (env["LOG_FORMAT"], env["METRICS_BIND"]) == ("console", "127.0.0.1:9464")
    assert env["LOG_COLORS"] == "never"  # the tests' output is no terminal
    assert "  Metrics   http://127.0.0.1:9464/metrics" in banner(settings, ["web", "metrics"], urls, set())

    # The previous run's samples go before the children start; nothing else in the directory is touched.
    directory = pathlib.Path(env["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"old")
    (directory / "README").write_text("kept")
    reset_directory(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["README"]

    monkeypatch.setenv("LOG_FORMAT", "json")
    assert child_environment(settings, urls)["LOG_FORMAT"] == "json"  # an explicit choice is kept


def test_containers_writing_into_subdirectories_of_one_volume_are_merged(samples_dir, database, settings, var_dir):
    """docker-compose.yml gives each service /metrics/<service>: process ids repeat across containers."""
    from ops.metrics_server import build_registry

    for service in ("web", "worker"):
        env = child_env(database, settings.redis_url, samples_dir / service, var_dir)
        (samples_dir / service).mkdir()
        # Both "containers" run their process as the same pid would: the same file name in each.
        count = "from services import metrics; metrics.observe_job('jobs.selftest', 'succeeded', 0.1)"
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    assert {p.parent.name for p in samples_dir.glob("*/*.db")} == {"web", "worker"}

    old = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(samples_dir)
    try:
        registry = build_registry(settings, depths=dict)
    finally:
        if old is None:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = old
    value = registry.get_sample_value("hearth_jobs_total", {"kind": "jobs.selftest", "outcome": "succeeded"})
    assert value == 2.0
