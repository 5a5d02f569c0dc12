"""Two of everything on one machine: what running Hearth on several hosts relies on.

Two gunicorn web processes, two relays and two Celery workers share one
PostgreSQL and one Redis, as hosts behind a load balancer would. An event
published through either web process reaches the websocket clients of both
relays; jobs submitted through both webs each run exactly once across the two
workers; and of two beats only the lease holder sends the schedule.
"""

from __future__ import annotations

import collections
import pathlib

import httpx
import pytest

from models.jobs import Job, JobEffect
from tests.factories import PASSWORD, make_user
from tests.integration.processes import BIN, Proc, environment, start_gunicorn, start_worker, wait_for
from tests.relay.live import WsClient, start_relay, token
from tests.tasks.live import live_events, login

pytestmark = pytest.mark.integration

JOBS = 16


@pytest.fixture
def two_of_everything(live_env, live_db, logs, procs):
    webs, relays = [], []
    for _ in range(2):
        proc, base = start_gunicorn(live_env, logs)
        procs.append(proc)
        webs.append(base)
        proc, url = start_relay(live_env, logs)
        procs.append(proc)
        relays.append(url)
    for name in ("worker-a", "worker-b"):
        procs.append(start_worker(live_env, logs, queues="default", name=name))
    return webs, relays


def _selftest(base: str, headers: dict, **body) -> str:
    resp = httpx.post(f"{base}/v1/admin/jobs/selftest", json=body, headers=headers, timeout=10)
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_events_from_either_web_reach_both_relays_and_each_job_runs_once(live_env, two_of_everything, procs):
    webs, relays = two_of_everything
    admin = make_user(role="admin")
    raw, _ = token(live_env, admin)
    listeners = [WsClient.authenticated(url, raw) for url in relays]
    headers = [login(base, admin.email, PASSWORD, env=live_env) for base in webs]

    # One job through each web process: both relays' clients hear both, from queued to succeeded.
    first, second = _selftest(webs[0], headers[0], steps=2, step_ms=10), _selftest(webs[1], headers[1], steps=2)
    for client in listeners:
        events = client.events(2 * 5, timeout=20)  # queued, started, progress x2, succeeded: each job
        by_job = collections.defaultdict(list)
        for event in events:
            by_job[event["data"]["id"]].append(event["type"])
        assert set(by_job) == {first, second}
        for types in by_job.values():
            assert types[0] == "job.queued" and types[-1] == "job.succeeded" and types.count("job.started") == 1
    for client in listeners:
        client.close()

    # Many jobs through both webs: each runs once, on one of the two workers, and both workers work.
    ids = [_selftest(webs[n % 2], headers[n % 2], steps=2, step_ms=60) for n in range(JOBS)]
    wait_for(
        lambda: Job.select().where(Job.id.in_(ids), Job.status == "succeeded").count() == JOBS,
        timeout=60,
        what=f"{JOBS} jobs to succeed",
    )
    jobs = list(Job.select().where(Job.id.in_(ids)))
    assert {job.attempts for job in jobs} == {1}
    workers = collections.Counter(job.result["worker"] for job in jobs)
    assert len(workers) == 2, workers  # two worker processes, each with some of the jobs
    # The run's side effect (the probe object, once per job under its idempotency key) happened once each.
    effects = collections.Counter(effect.job_id for effect in JobEffect.select().where(JobEffect.job.in_(ids)))
    assert sorted(map(str, effects)) == sorted(ids) and set(effects.values()) == {1}
    probes = list((pathlib.Path(live_env["HEARTH_VAR_DIR"]) / "storage" / "selftest").glob("*.json"))
    assert len(probes) == JOBS + 2
    history = live_events(live_env)
    for job_id in ids:
        types = [event["type"] for event in history.history(f"job:{job_id}")]
        assert types.count("job.started") == 1 and types.count("job.succeeded") == 1, (job_id, types)


def _start_beat(env: dict, logs: pathlib.Path, name: str) -> Proc:
    schedule = pathlib.Path(env["HEARTH_VAR_DIR"]) / f"celerybeat-{name}"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(BIN / "celery"), "-A", "tasks", "beat", "-l", "info", "--schedule", str(schedule)]
    proc = Proc(name, argv, environment(env), logs)
    wait_for(lambda: "beat: Starting" in proc.output() or not proc.alive(), timeout=30, what=f"{name} to start")
    assert proc.alive(), proc.output()
    return proc


def _sent(proc: Proc) -> int:
    return proc.output().count("Sending due task sweep-jobs")


def test_a_second_beat_stands_by_and_takes_over_when_the_first_stops(live_env, live_db, logs, procs):
    env = {**live_env, "BEAT_LOCK_TTL": "3"}
    leader = _start_beat(env, logs, "beat-a")
    procs.append(leader)
    wait_for(lambda: "leader lease taken" in leader.output(), timeout=15, what="the first beat to take the lease")
    standby = _start_beat(env, logs, "beat-b")
    procs.append(standby)
    # sweep-jobs runs every 15 s: the leader sends it, the standby does not, for as long as both run.
    wait_for(lambda: _sent(leader) >= 1, timeout=25, what="the leader to send sweep-jobs")
    wait_for(lambda: _sent(leader) >= 2, timeout=25, what="the leader to send sweep-jobs again")
    assert _sent(standby) == 0, standby.output()
    assert "standing by" in standby.output()

    leader.kill9()  # a crash: nothing releases the lease, it lapses after BEAT_LOCK_TTL
    wait_for(lambda: "leader lease taken" in standby.output(), timeout=10, what="the standby to take over")
    # It sends on the schedule's own rhythm, not a backlog of everything due while it stood by.
    wait_for(lambda: _sent(standby) >= 1, timeout=25, what="the new leader to send sweep-jobs")
    assert _sent(standby) == 1
