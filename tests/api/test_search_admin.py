"""``/v1/admin/search/status`` and ``/v1/admin/search/reindex``: admins only; the rebuild is a job."""

from __future__ import annotations

import pytest

from models.jobs import Job
from models.search.index import read_state
from tests.api.conftest import assert_problem
from tests.factories import make_user
from tests.search_listings import make_listing, make_owner, update_listing

ROUTES = (("GET", "/v1/admin/search/status"), ("POST", "/v1/admin/search/reindex"))


@pytest.mark.parametrize("role", ["buyer", "seller", "agent"])
def test_only_admins_may_see_or_rebuild_the_index(client, auth_headers, role):
    headers = auth_headers(make_user(role=role))
    for method, path in ROUTES:
        assert_problem(client.simulate_request(method, path, headers=headers), 403)
        assert_problem(client.simulate_request(method, path), 401)
    assert Job.select().where(Job.kind == "search.rebuild_index").count() == 0


def test_status_shows_generation_counts_and_lag(client, auth_headers, admin, jobs):
    owner = make_owner()
    shown = make_listing(owner)
    make_listing(owner, standard_status="Incomplete")
    pending = make_listing(owner, index=False)  # listed, not yet indexed
    job = update_listing(pending, list_price=12_300_000)
    headers = auth_headers(admin)

    body = client.simulate_get("/v1/admin/search/status", headers=headers).json
    assert body["generation"] == read_state()["generation"]
    assert (body["indexed_listings"], body["searchable_listings"]) == (1, 2)
    lag = body["lag"]
    assert (lag["dirty_listings"], lag["queued_reindex_jobs"], lag["running_reindex_jobs"]) == (1, 1, 0)
    assert lag["oldest_dirty_since"] is not None and lag["oldest_dirty_age_seconds"] >= 0
    assert body["rebuild"]["in_progress"] is False

    jobs.submit(job)
    jobs.run_pending()
    body = client.simulate_get("/v1/admin/search/status", headers=headers).json
    assert (body["indexed_listings"], body["lag"]["dirty_listings"], body["lag"]["queued_reindex_jobs"]) == (2, 0, 0)
    assert body["lag"]["oldest_dirty_since"] is None
    assert shown.id


def test_reindex_is_a_job_that_swaps_in_a_new_generation(client, auth_headers, admin, jobs):
    owner = make_owner()
    listings = [make_listing(owner, list_price=(i + 1) * 1_000_000) for i in range(5)]
    missed = make_listing(owner, index=False)  # e.g. written by an import that bypassed the queue
    headers = auth_headers(admin)
    before = client.simulate_get("/v1/properties", params={"sort": "price_asc"}).json
    assert before["total"] == 5
    generation = read_state()["generation"]

    resp = client.simulate_post("/v1/admin/search/reindex", headers=headers)
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"] == f"/v1/jobs/{resp.json['id']}"
    again = client.simulate_post("/v1/admin/search/reindex", headers=headers)
    assert again.status_code == 202 and again.json["id"] == resp.json["id"]  # one rebuild at a time
    # Until the job has run, search answers from the live generation.
    assert client.simulate_get("/v1/properties", params={"sort": "price_asc"}).json == before

    assert jobs.run_pending() == 1
    job = client.simulate_get(resp.headers["location"], headers=headers).json
    assert (job["status"], job["progress"]["percent"]) == ("succeeded", 100)
    assert job["result"]["generation"] == generation + 1 and job["result"]["rows"] == 6
    after = client.simulate_get("/v1/properties", params={"sort": "price_asc"}).json
    assert [item["id"] for item in after["items"]] == [str(x.id) for x in listings] + [str(missed.id)]

    status = client.simulate_get("/v1/admin/search/status", headers=headers).json
    assert status["generation"] == generation + 1
    assert status["rebuild"]["last_rebuild_job_id"] == resp.json["id"]
    assert status["rebuild"]["last_rebuild_rows"] == 6
    # A new rebuild may start once the last one finished.
    assert client.simulate_post("/v1/admin/search/reindex", headers=headers).json["id"] != resp.json["id"]
