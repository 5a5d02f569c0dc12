"""The relay under uvicorn with real websocket clients, fed by a real worker and by the event bus."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import jwt
import pytest

from models.jobs import Job
from relay import protocol as proto
from tests.factories import PASSWORD, make_user
from tests.integration.processes import start_gunicorn, start_worker
from tests.relay.live import WsClient, start_relay, token
from tests.tasks.live import LiveBroker, live_events, login

pytestmark = pytest.mark.integration


@pytest.fixture
def relay(live_env, live_db, logs, procs):
    proc, url = start_relay(live_env, logs)
    procs.append(proc)
    return url


def test_live_progress_events_from_a_worker_reach_the_websocket(live_env, relay, logs, procs):
    user = make_user()
    raw, _ = token(live_env, user)
    procs.append(start_worker(live_env, logs, queues="default"))
    client = WsClient.authenticated(relay, raw)

    job = Job.create(kind="jobs.selftest", queue="default", owner=user.id, input={"steps": 4, "step_ms": 50})
    broker = LiveBroker(live_env)
    assert broker.submit(job)
    broker.close()
    events = client.events(6)
    client.close()

    assert [e["type"] for e in events] == ["job.started"] + ["job.progress"] * 4 + ["job.succeeded"]
    assert {e["channel"] for e in events} == {f"user:{user.id}"}
    assert [e["data"]["progress"]["percent"] for e in events[1:5]] == [25, 50, 75, 100]
    assert events[-1]["data"]["status"] == "succeeded" and events[-1]["data"]["id"] == str(job.id)
    ids = [tuple(map(int, e["id"].split("-"))) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_subscribing_to_another_users_job_is_refused(live_env, relay):
    owner, stranger = make_user(), make_user()
    job = Job.create(kind="jobs.selftest", owner=owner.id)
    client = WsClient.authenticated(relay, token(live_env, stranger)[0])
    client.send(type="subscribe", channel=f"job:{job.id}")
    assert client.recv() == {"type": "error", "code": "forbidden", "channel": f"job:{job.id}"}

    bus = live_events(live_env)
    bus.publish_job(job, "job.progress")  # not delivered to the stranger...
    mine = bus.publish(f"user:{stranger.id}", "test.tick", {})  # ...who gets only their own events
    assert [e["id"] for e in client.events(1)] == [mine]

    owners = WsClient.authenticated(relay, token(live_env, owner)[0])
    owners.send(type="subscribe", channel=f"job:{job.id}")
    assert owners.recv() == {"type": "subscribed", "channel": f"job:{job.id}"}
    client.close()
    owners.close()


def test_resume_after_a_disconnect_misses_nothing_and_repeats_nothing(live_env, relay):
    user = make_user()
    raw, _ = token(live_env, user)
    bus = live_events(live_env)
    channel = f"user:{user.id}"
    total = 600

    def publish():
        for n in range(total):
            bus.publish(channel, "test.tick", {"n": n})
            time.sleep(0.002)

    client = WsClient.authenticated(relay, raw)
    publisher = threading.Thread(target=publish)
    publisher.start()
    received = []
    try:
        # Drop the connection while events keep coming, reconnect with the last id seen, twice.
        for stop_at in (150, 350):
            while len(received) < stop_at:
                received += client.events(1)
            client.conn.socket.close()  # an abrupt drop, not a clean close
            time.sleep(0.05)
            client = WsClient.authenticated(relay, raw, last_event_id=received[-1]["id"])
        while len(received) < total:
            received += client.events(1, timeout=10)
    finally:
        publisher.join()
    client.close()

    assert [e["data"]["n"] for e in received] == list(range(total))
    assert len({e["id"] for e in received}) == total


def test_an_expired_token_closes_the_connection(live_env, live_db, logs, procs):
    proc, url = start_relay(live_env, logs, RELAY_HEARTBEAT_INTERVAL="1", RELAY_IDLE_TIMEOUT="5")
    procs.append(proc)
    raw, _ = token(live_env, make_user(), expires_in=2)
    # ``exp`` is whole seconds, so the token lives between 1 and 2 seconds: the
    # close is measured against the claim itself, not against when it was issued.
    expires_at = jwt.decode(raw, options={"verify_signature": False})["exp"]
    expiring = WsClient.authenticated(url, raw)
    code, reason = expiring.closed_with(timeout=5)
    closed_at = time.time()
    assert (code, "expired" in reason) == (proto.UNAUTHENTICATED, True)
    assert expires_at - 0.05 <= closed_at <= expires_at + 1.5


def test_logging_out_closes_the_sessions_connections(live_env, live_db, logs, procs):
    proc, url = start_relay(live_env, logs, RELAY_HEARTBEAT_INTERVAL="1", RELAY_IDLE_TIMEOUT="5")
    procs.append(proc)
    web, base = start_gunicorn(live_env, logs)
    procs.append(web)
    user = make_user()
    headers = login(base, user.email, PASSWORD)
    raw = headers["Authorization"].split()[1]
    client = WsClient.authenticated(url, raw)
    other_session = WsClient.authenticated(url, token(live_env, user)[0])

    assert httpx.post(f"{base}/v1/auth/logout", headers=headers, timeout=10).status_code == 204
    started = time.monotonic()
    assert client.closed_with(timeout=4)[0] == proto.SESSION_ENDED
    assert time.monotonic() - started <= 2.5  # within a heartbeat interval (1 s here, 25 s by default)
    other_session.send(type="ping")
    assert other_session.recv()["type"] in ("pong", "heartbeat")  # only that session ended

    again = WsClient(url)
    again.send(type="auth", token=raw)
    assert again.closed_with()[0] == proto.SESSION_ENDED


def test_tokens_in_urls_are_refused_with_a_reason(live_env, relay):
    client = WsClient(relay + "?token=" + token(live_env, make_user())[0])
    code, reason = client.closed_with()
    assert code == proto.PROTOCOL_ERROR and "URL" in reason


def test_a_client_that_does_not_read_is_disconnected_and_can_resume(live_env, live_db, logs, procs):
    proc, url = start_relay(live_env, logs, RELAY_SEND_QUEUE="8")
    procs.append(proc)
    user = make_user()
    raw, _ = token(live_env, user)
    bus = live_events(live_env)
    channel = f"user:{user.id}"
    first = bus.publish(channel, "test.big", {"n": -1})

    slow = WsClient.authenticated(url, raw, last_event_id=first, max_queue=1)
    padding = "x" * 60_000
    ids = [bus.publish(channel, "test.big", {"n": n, "pad": padding}) for n in range(150)]  # ~9 MB
    time.sleep(1.0)  # not reading: buffers fill up, then the relay's queue
    code, _ = slow.closed_with(timeout=10)
    assert code == proto.TOO_SLOW

    # The relay kept nothing for it; resuming gets everything from the stream.
    again = WsClient.authenticated(url, raw, last_event_id=first)
    assert [e["id"] for e in again.events(len(ids), timeout=20)] == ids
    again.close()


def test_shutdown_closes_connections_with_service_restart(live_env, live_db, logs, procs):
    proc, url = start_relay(live_env, logs)
    procs.append(proc)
    client = WsClient.authenticated(url, token(live_env, make_user())[0])
    proc.popen.send_signal(signal.SIGTERM)
    assert client.closed_with(timeout=5)[0] == proto.SERVICE_RESTART
    proc.popen.wait(timeout=10)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "Application shutdown complete" in proc.output()


def test_a_flood_of_unauthenticated_sockets_from_one_address_is_turned_away(live_env, live_db, logs, procs):
    proc, url = start_relay(live_env, logs, RELAY_UNAUTHENTICATED_PER_ADDRESS="5")
    procs.append(proc)
    waiting = [WsClient(url) for _ in range(5)]
    refused = [WsClient(url).closed_with(timeout=5) for _ in range(30)]
    assert set(refused) == {(proto.TRY_AGAIN_LATER, "too many unauthenticated connections from this address")}

    user = make_user()
    waiting[0].send(type="auth", token=token(live_env, user)[0])
    assert waiting[0].recv()["type"] == "ready"
    # The authenticated socket's place goes to the next one.
    WsClient.authenticated(url, token(live_env, user)[0]).close()
    health = httpx.get(url.replace("ws://", "http://").replace("/v1/realtime", "/healthz"), timeout=5).json()
    assert (health["unauthenticated"], health["refused_unauthenticated"]) == (4, 30)
    for client in waiting:
        client.close()
