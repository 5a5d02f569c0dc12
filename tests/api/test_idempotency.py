"""``Idempotency-Key`` on an ``@operation(..., idempotent=True)``: one run per key, replays, mismatches, turns.

The money endpoints use the flag; here a test-only resource stands in for them:
its POST writes an audit row and creates a job, as a money request does.
"""

from __future__ import annotations

import datetime
import threading
import uuid
from typing import Annotated

import pytest
from openapi_spec_validator import validate

from api.audit import audit
from api.errors import conflict, validation_error
from api.operation import operation
from api.schemas import Request, line
from models.audit import AuditEntry
from models.base import utcnow
from models.idempotency import IdempotencyKey
from models.jobs import Job
from tests.api.conftest import assert_problem

ROUTE = "/v1/test/things"
KIND = "test.thing"


class ThingRequest(Request):
    name: Annotated[str, line(50, min_length=1)]


class Things:
    """Writes a row and creates a job per run; ``fail`` and ``hold`` let a test steer one run."""

    def __init__(self):
        self.runs = 0
        self.fail: Exception | None = None
        self.hold = None

    @operation("Make a test thing", body=ThingRequest, status=201, errors=(404, 409), idempotent=True, tags=("test",))
    def on_post(self, req, resp):
        self.runs += 1
        job = Job.create(kind=KIND, owner=req.context.principal.user_id, input={"name": req.context.body.name})
        audit(req, KIND, job.id, target_type="job")
        if self.hold is not None:
            self.hold()
        if self.fail is not None:
            raise self.fail
        resp.location = f"/v1/jobs/{job.id}"
        resp.set_header("ETag", '"v1"')
        resp.media = {"job_id": str(job.id), "name": req.context.body.name, "run": self.runs}


@pytest.fixture
def things(client):
    resource = Things()
    client.app.add_route(ROUTE, resource)
    client.app.add_route("/v1/test/boxes", resource)  # the same responder under another route
    return resource


@pytest.fixture
def headers(user, auth_headers):
    return auth_headers(user)


def post(client, headers, key=None, name="lamp", path=ROUTE):
    extra = {"Idempotency-Key": key} if key is not None else {}
    return client.simulate_post(path, json={"name": name}, headers={**headers, **extra})


def written() -> tuple[int, int]:
    """(jobs, audit rows) the test resource has written."""
    return Job.select().where(Job.kind == KIND).count(), AuditEntry.select().where(AuditEntry.action == KIND).count()


def test_a_retry_gets_the_first_response_and_nothing_runs_again(client, things, headers, jobs):
    first = post(client, headers, "order-1")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert written() == (1, 1) and len(jobs.submitted) == 1

    again = post(client, headers, "order-1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert again.json["run"] == 1
    assert again.headers["Location"] == first.headers["Location"] == f"/v1/jobs/{first.json['job_id']}"
    assert again.headers["ETag"] == '"v1"'
    assert again.headers["Content-Type"] == first.headers["Content-Type"]
    assert things.runs == 1
    assert written() == (1, 1) and len(jobs.submitted) == 1


def test_the_stored_response_lives_for_the_configured_ttl(client, things, headers, settings, user):
    before = utcnow()
    post(client, headers, "order-ttl")
    row = IdempotencyKey.get(IdempotencyKey.user == user.id, IdempotencyKey.key == "order-ttl")
    assert (row.method, row.route, row.response_status) == ("POST", ROUTE, 201)
    ttl = datetime.timedelta(seconds=settings.idempotency_key_ttl)
    assert settings.idempotency_key_ttl == 24 * 3600
    assert before + ttl <= row.expires_at <= utcnow() + ttl


def test_the_same_key_with_another_body_is_refused(client, things, headers):
    post(client, headers, "order-2", name="lamp")
    resp = post(client, headers, "order-2", name="sofa")
    body = assert_problem(resp, 422)
    assert body["type"].endswith("/idempotency-key-mismatch")
    assert "Idempotent-Replayed" not in resp.headers
    assert things.runs == 1 and written() == (1, 1)


def test_the_same_key_on_another_endpoint_is_refused(client, things, headers):
    post(client, headers, "order-3")
    resp = post(client, headers, "order-3", path="/v1/test/boxes")
    body = assert_problem(resp, 422)
    assert body["type"].endswith("/idempotency-key-mismatch")
    assert f"POST {ROUTE}" in body["detail"]
    assert things.runs == 1


def test_a_request_while_the_first_still_runs_is_a_conflict(client, things, headers, jobs):
    """The second request comes from another thread, on its own database connection, while the first holds."""
    second = {}

    def send_second():
        second["resp"] = post(client, headers, "order-4")

    def hold():
        things.hold = None  # only the first run waits for the second request
        thread = threading.Thread(target=send_second)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the second request waited for the first instead of answering 409"

    things.hold = hold
    first = post(client, headers, "order-4")
    assert first.status_code == 201, first.text
    body = assert_problem(second["resp"], 409)
    assert body["type"].endswith("/idempotency-key-in-flight")
    assert things.runs == 1 and written() == (1, 1) and len(jobs.submitted) == 1
    # Once the first has finished, the retry is a replay.
    assert post(client, headers, "order-4").headers["Idempotent-Replayed"] == "true"


def test_keys_belong_to_one_user(client, things, headers, auth_headers, user):
    from tests.factories import make_user

    other = make_user()
    mine = post(client, headers, "shared-key")
    theirs = post(client, auth_headers(other), "shared-key")
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json["job_id"] != mine.json["job_id"]
    assert things.runs == 2 and written() == (2, 2)
    assert {row.user_id for row in IdempotencyKey.select()} == {user.id, other.id}


def test_an_expired_key_runs_again(client, things, headers, user):
    first = post(client, headers, "order-5")
    IdempotencyKey.update(expires_at=utcnow() - datetime.timedelta(seconds=1)).where(
        IdempotencyKey.user == user.id
    ).execute()
    again = post(client, headers, "order-5")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.json["job_id"] != first.json["job_id"]
    assert things.runs == 2 and written() == (2, 2)
    # The new response replaced the expired one, and is the one replayed now.
    row = IdempotencyKey.get(IdempotencyKey.user == user.id)
    assert row.expires_at > utcnow()
    assert post(client, headers, "order-5").json["job_id"] == again.json["job_id"]


def test_an_error_the_responder_meant_is_kept_and_replayed_without_its_writes(client, things, headers, jobs):
    things.fail = conflict("This thing cannot be made now.", slug="illegal-transition")
    first = post(client, headers, "order-6")
    body = assert_problem(first, 409)
    assert body["type"].endswith("/illegal-transition")
    assert written() == (0, 0) and jobs.submitted == []  # the run's writes were rolled back

    things.fail = None  # the run would succeed now: a replay is the only way to answer 409 again
    again = post(client, headers, "order-6")
    assert again.status_code == 409
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Content-Type"].startswith("application/problem+json")
    assert again.content == first.content
    assert things.runs == 1 and written() == (0, 0)


def test_an_unexpected_error_keeps_nothing_and_frees_the_key(client, things, headers, jobs):
    things.fail = RuntimeError("boom")
    crashed = post(client, headers, "order-7")
    assert_problem(crashed, 500)
    assert IdempotencyKey.select().count() == 0
    assert written() == (0, 0) and jobs.submitted == []

    things.fail = None
    retry = post(client, headers, "order-7")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert things.runs == 2 and written() == (1, 1) and len(jobs.submitted) == 1


def test_a_body_that_does_not_validate_keeps_nothing(client, things, headers):
    refused = post(client, headers, "order-8", name="x" * 51)
    assert_problem(refused, 422, field="body.name")
    things.fail = validation_error([{"field": "body.name", "message": "no such lamp"}])
    assert_problem(post(client, headers, "order-8"), 422, field="body.name")
    assert IdempotencyKey.select().count() == 0

    things.fail = None
    fixed = post(client, headers, "order-8")
    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9", "new\x7fline"])
def test_a_malformed_key_is_refused_naming_the_header(client, things, headers, key):
    resp = post(client, headers, key)
    assert_problem(resp, 422, field="header.Idempotency-Key")
    assert things.runs == 0 and written() == (0, 0)


def test_the_longest_key_and_any_printable_character_are_taken(client, things, headers):
    for key in ("k" * 255, "~!@#$%^&*()_+ {}|:\"<>?`-=[]\\;',./"):
        assert post(client, headers, key).status_code == 201
    assert post(client, headers, "k" * 255).headers["Idempotent-Replayed"] == "true"


def test_without_a_key_every_request_runs(client, things, headers, jobs):
    first, second = post(client, headers), post(client, headers)
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert first.json["job_id"] != second.json["job_id"]
    assert written() == (2, 2) and len(jobs.submitted) == 2
    assert IdempotencyKey.select().count() == 0


def test_operations_that_are_not_idempotent_ignore_the_header(client, headers):
    for _ in range(2):
        resp = client.simulate_post(
            "/v1/me/saved-searches",
            json={"name": f"Lofts {uuid.uuid4().hex[:6]}", "query": {}},
            headers={**headers, "Idempotency-Key": "ignored"},
        )
        assert resp.status_code == 201, resp.text
        assert "Idempotent-Replayed" not in resp.headers
    assert IdempotencyKey.select().count() == 0


def test_the_document_declares_the_header_and_its_answers(client, things):
    spec = client.simulate_get("/v1/openapi.json").json
    validate(spec)
    op = spec["paths"][ROUTE]["post"]
    [parameter] = [p for p in op["parameters"] if p["in"] == "header"]
    assert parameter["name"] == "Idempotency-Key" and parameter["required"] is False
    assert parameter["schema"] == {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]{1,255}$"}
    assert "24 hours" in parameter["description"]
    assert op["responses"]["201"]["headers"]["Idempotent-Replayed"] == {
        "$ref": "#/components/headers/Idempotent-Replayed"
    }
    assert "Idempotent-Replayed" in op["responses"]["409"]["headers"]  # a kept 409 is replayed
    assert "idempotency-key-in-flight" in op["responses"]["409"]["description"]
    assert "idempotency-key-mismatch" in op["responses"]["422"]["description"]
    assert "Idempotent-Replayed" in spec["components"]["headers"]
    # Operations without the flag say nothing of it.
    saved = spec["paths"]["/v1/me/saved-searches"]["post"]
    assert all(p["name"] != "Idempotency-Key" for p in saved.get("parameters", ()))
    assert "Idempotent-Replayed" not in saved["responses"]["201"]["headers"]


def test_an_idempotent_operation_needs_a_signed_in_user_and_a_json_body():
    with pytest.raises(ValueError, match="auth='required'"):
        operation("Anonymous retries", auth="optional", idempotent=True)
    with pytest.raises(ValueError, match="JSON body"):
        operation("Raw retries", raw_body="application/octet-stream", idempotent=True)


def test_browsers_may_send_the_key_and_read_the_replay_mark(database, tmp_path, redis_prefix, jobs):
    from falcon import testing

    from api.app import build_services, create_app
    from tests.conftest import make_settings

    origin = "https://app.hearth.test"
    settings = make_settings(database, tmp_path, redis_prefix=redis_prefix, cors_origins=(origin,))
    browser = testing.TestClient(create_app(settings, services=build_services(settings, jobs=jobs), init_db=False))
    browser.app.add_route(ROUTE, Things())
    preflight = browser.simulate_options(
        ROUTE,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
        },
    )
    assert "idempotency-key" in preflight.headers.get("Access-Control-Allow-Headers", "").lower()
    resp = browser.simulate_get("/healthz", headers={"Origin": origin})
    assert "Idempotent-Replayed" in resp.headers["Access-Control-Expose-Headers"]


def test_effects_left_to_the_commit_happen_once_and_never_for_a_kept_error(client, things, headers):
    """What docs/api.md tells responders to do with effects outside the database."""
    from models.db import after_commit_to
    from models.job_submission import current_submission

    effects, during_run = [], []

    def hold():
        scope = current_submission()  # the request's scope: req.context.job_submission
        assert scope is not None
        after_commit_to(scope.base, lambda: effects.append("sent"))
        during_run.append(list(effects))

    things.hold = hold
    post(client, headers, "order-9")
    post(client, headers, "order-9")
    assert during_run == [[]]  # not at once: after the commit
    assert effects == ["sent"]
    things.fail = conflict("Not now.")
    assert post(client, headers, "order-10").status_code == 409
    assert effects == ["sent"]
