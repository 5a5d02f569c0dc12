"""Metrics: what the API and a job count, as the metrics process serves them (multiprocess mode)."""

from __future__ import annotations

import datetime
import io
import uuid

from prometheus_client.parser import text_string_to_metric_families

from models.base import utcnow
from models.jobs import Job
from ops.metrics_server import build_registry, metrics_app
from services import metrics


def scrape(settings, depths=dict) -> dict:
    """``GET /metrics`` of the metrics process: ``{sample name: {labels (sorted tuple): value}}``."""
    app = metrics_app(build_registry(settings, depths=depths))
    status = []
    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"}, lambda s, h: status.append(s)))
    assert status == ["200 OK"]
    samples: dict = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_the_tests_run_metrics_in_multiprocess_mode():
    # As in production: samples go to files the metrics process merges, not to this process's memory.
    from prometheus_client import values

    directory = metrics.multiprocess_directory()
    assert directory is not None and values.ValueClass.__name__ == "MmapedValue"
    metrics.JOB_SWEEPS.labels("requeued").inc(0)
    assert any(directory.glob("counter_*.db"))


def test_requests_are_counted_by_route_template_method_and_status_class(client, settings, auth_headers, user):
    headers = auth_headers(user)
    before = scrape(settings)
    for _ in range(3):
        assert client.simulate_get("/v1/me", headers=headers).status_code == 200
    missing = f"/v1/properties/{uuid.uuid4()}"
    assert client.simulate_get(missing).status_code == 404
    assert client.simulate_get("/no/such/thing").status_code == 404
    after = scrape(settings)

    def grew(route, method, status):
        name = "hearth_http_requests_total"
        labels = {"route": route, "method": method, "status": status}
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("/v1/me", "GET", "2xx") == 3
    # The route template, never the path with its id: the label set stays bounded.
    assert grew("/v1/properties/{property_id:uuid}", "GET", "4xx") == 1
    assert grew("unmatched", "GET", "4xx") == 1
    assert not any(missing in dict(labels).get("route", "") for labels in after["hearth_http_requests_total"])
    duration = "hearth_http_request_duration_seconds_count"
    assert (
        value(after, duration, route="/v1/me", method="GET", status="2xx")
        - value(before, duration, route="/v1/me", method="GET", status="2xx")
        == 3
    )


def test_the_api_port_never_serves_metrics(client):
    assert client.simulate_get("/metrics").status_code == 404
    assert client.simulate_get("/v1/metrics").status_code == 404


def test_a_job_run_is_counted_by_kind_and_outcome_with_its_duration(client, jobs, settings, auth_headers, admin):
    before = scrape(settings)
    resp = client.simulate_post("/v1/admin/jobs/selftest", headers=auth_headers(admin), json={})
    assert resp.status_code == 202, resp.text
    assert jobs.run_pending() == 1
    after = scrape(settings)
    kind = "jobs.selftest"
    runs = value(after, "hearth_jobs_total", kind=kind, outcome="succeeded")
    assert runs - value(before, "hearth_jobs_total", kind=kind, outcome="succeeded") == 1
    count = value(after, "hearth_job_duration_seconds_count", kind=kind)
    assert count - value(before, "hearth_job_duration_seconds_count", kind=kind) == 1


def test_scrape_time_gauges_read_the_queues_the_jobs_and_the_search_index(settings, user):
    waiting = utcnow() - datetime.timedelta(seconds=90)
    Job.create(kind="jobs.selftest", queue="maintenance", owner=user.id, created_at=waiting, enqueued_at=waiting)
    samples = scrape(settings, depths=lambda: {"default": 7, "scans": 0})
    assert value(samples, "hearth_queue_depth", queue="default") == 7
    assert value(samples, "hearth_queue_depth", queue="scans") == 0
    # Every queue has an age, 0 when nothing waits; the job above has waited about 90 s.
    assert 60 <= value(samples, "hearth_queue_oldest_job_age_seconds", queue="maintenance") < 600
    ages = samples["hearth_queue_oldest_job_age_seconds"]
    assert (("queue", "money"),) in ages
    assert "hearth_search_index_lag_seconds" in samples


def test_the_metrics_process_answers_only_metrics_and_health(settings):
    app = metrics_app(build_registry(settings, depths=dict))
    answers = []
    for path in ("/metrics", "/healthz", "/"):
        app({"REQUEST_METHOD": "GET", "PATH_INFO": path, "wsgi.input": io.BytesIO()}, lambda s, h: answers.append(s))
    assert answers == ["200 OK", "200 OK", "404 Not Found"]


def test_escrow_transitions_and_payment_moves_are_counted(client, settings):
    from models.payments import advance
    from tests.escrow_deals import deposit_payment, fund, make_deal

    before = scrape(settings)  # the API is built (client): its composition root listens to the moves
    deal = make_deal()
    payment = deposit_payment(deal)
    fund(deal)
    assert advance(payment, "succeeded")
    assert not advance(payment, "succeeded")  # no move, nothing counted
    after = scrape(settings)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("hearth_escrow_transitions_total", to="funded") == 1
    assert grew("hearth_payments_total", kind="deposit", status="succeeded") == 1
