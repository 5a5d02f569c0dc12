"""ops/prometheus: the scrape config, the alert rules and the dashboard are valid and speak of real series."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from ops.metrics_server import SCRAPE_TIME_GAUGES
from services import metrics
from settings import ROOT

PROMETHEUS = ROOT / "ops" / "prometheus"
SERIES = re.compile(r"\bhearth_[a-z_]+\b")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = os.environ.get("TEST_PROMTOOL") or shutil.which("promtool")
    if not found:
        reason = os.environ.get("TEST_PROMTOOL_UNAVAILABLE", "no promtool (python -m ops.testrun installs it)")
        pytest.skip(reason)
    return found


def run(promtool: str, *args: str) -> str:
    done = subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_alert_rules_are_valid(promtool):
    assert "SUCCESS" in run(promtool, "check", "rules", "alerts.yml")


def test_the_scrape_config_is_valid_and_scrapes_the_metrics_process(promtool):
    assert "SUCCESS" in run(promtool, "check", "config", "prometheus.yml")
    assert "127.0.0.1:9464" in (PROMETHEUS / "prometheus.yml").read_text()  # METRICS_BIND's default


def test_the_alerts_fire_on_trouble_and_stay_quiet_on_a_healthy_host(promtool):
    assert "SUCCESS" in run(promtool, "test", "rules", "alerts_test.yml")


def _exported() -> set[str]:
    names = set()
    for metric in vars(metrics).values():
        describe = getattr(metric, "describe", None)
        if callable(describe) and hasattr(metric, "_name"):
            for family in describe():
                names |= {family.name, family.name + "_total", family.name + "_bucket", family.name + "_count"}
    return names | set(SCRAPE_TIME_GAUGES)


def test_every_series_the_alerts_and_the_dashboard_use_is_one_hearth_exports():
    exported = _exported()
    assert {"hearth_http_requests_total", "hearth_queue_depth", "hearth_job_sweeps_total"} <= exported
    alerts = set(SERIES.findall((PROMETHEUS / "alerts.yml").read_text()))
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text())
    queries = {target["expr"] for panel in dashboard["panels"] for target in panel["targets"]}
    used = alerts | {name for query in queries for name in SERIES.findall(query)}
    assert used - exported == set()
    # The dashboard shows each metric at least once.
    shown = {name.removesuffix("_bucket") for query in queries for name in SERIES.findall(query)}
    assert {m.removesuffix("_total") for m in shown} >= {
        "hearth_http_requests",
        "hearth_jobs",
        "hearth_queue_depth",
        "hearth_search_index_lag_seconds",
        "hearth_relay_connections",
        "hearth_payments",
        "hearth_escrow_transitions",
    }
