"""``/v1/realtime``: authentication, channels and their authorization, resume, time limits."""

from __future__ import annotations

import asyncio
import json

import pytest
from falcon.errors import WebSocketDisconnected

from models import sessions
from models.jobs import Job
from models.session_cache import SessionCache
from relay import protocol as proto
from tests.factories import make_user


def _job(owner) -> Job:
    return Job.create(kind="jobs.selftest", owner=owner.id)


def test_a_connection_gets_its_users_events_live(relay, bus, token_for):
    user, other = make_user(), make_user()

    async def scenario(r):
        client = await r.connect(token_for(user))
        ready = await client.recv()
        assert ready["type"] == "ready" and ready["channel"] == f"user:{user.id}"
        assert (ready["heartbeat"], ready["idle_timeout"]) == (1, 3)
        bus.publish(f"user:{other.id}", "test.other", {"n": 0})
        event_id = bus.publish(f"user:{user.id}", "test.hello", {"n": 1})
        event = await client.recv_until(lambda m: "id" in m)
        assert event == [
            {"id": event_id, "channel": f"user:{user.id}", "type": "test.hello", "at": event[0]["at"], "data": {"n": 1}}
        ]

    relay.run(scenario)


def test_the_first_message_must_authenticate_in_time(relay, token_for):
    user = make_user()

    async def scenario(r):
        silent = await r.connect()
        assert await silent.closed_with() == proto.UNAUTHENTICATED
        pinging = await r.connect()
        await pinging.send(type="ping")
        assert await pinging.closed_with() == proto.UNAUTHENTICATED
        forged = await r.connect("not-a-token-at-all")
        assert await forged.closed_with() == proto.UNAUTHENTICATED
        token = token_for(user)
        sessions.revoke([token_for.session_id], reason="test")
        revoked = await r.connect(token)
        assert await revoked.closed_with() == proto.SESSION_ENDED

    relay.run(scenario)


def test_tokens_in_the_url_are_refused(relay, token_for):
    user = make_user()

    async def scenario(r):
        client = await r.connect(path=f"/v1/realtime?token={token_for(user)}")
        assert await client.closed_with() == proto.PROTOCOL_ERROR  # the reason says why (see integration)

    relay.run(scenario)


def test_messages_that_do_not_decode_close_with_a_protocol_error(relay, token_for):
    user = make_user()

    async def scenario(r):
        for bad in (
            "not json",
            '{"type": "dance"}',
            '{"type": "subscribe"}',
            "[1, 2]",
            '{"type": "subscribe", "channel": "job:x", "last_event_id": "yesterday"}',
        ):
            client = await r.connect(token_for(user))
            assert (await client.recv())["type"] == "ready"
            await client.ws.send_text(bad)
            assert await client.closed_with() == proto.PROTOCOL_ERROR, bad

    relay.run(scenario)


def test_ping_is_answered_and_the_hearth_subprotocol_is_accepted(relay, token_for):
    user = make_user()

    async def scenario(r):
        client = await r.connect(token_for(user), subprotocols=["hearth.v1"])
        assert client.ws.subprotocol == "hearth.v1"
        await client.recv()
        await client.send(type="ping")
        assert (await client.recv_until(lambda m: m["type"] == "pong"))[-1] == {"type": "pong"}

    relay.run(scenario)


def test_job_channels_are_for_the_jobs_owner_and_admins(relay, bus, token_for):
    owner, stranger, admin = make_user(), make_user(), make_user(role="admin")
    job, others_job = _job(owner), _job(stranger)

    async def scenario(r):
        client = await r.connect(token_for(owner))
        await client.recv()
        await client.send(type="subscribe", channel=f"job:{others_job.id}")
        assert await client.recv() == {"type": "error", "code": "forbidden", "channel": f"job:{others_job.id}"}
        for refused in (
            "job:00000000-0000-0000-0000-000000000000",
            "job:not-a-uuid",
            f"user:{stranger.id}",
            "conversation:1",
        ):
            await client.send(type="subscribe", channel=refused)
            assert await client.recv() == {"type": "error", "code": "forbidden", "channel": refused}
        await client.send(type="subscribe", channel="job:a b")
        assert (await client.recv())["code"] == "invalid_channel"

        await client.send(type="subscribe", channel=f"job:{job.id}")
        assert await client.recv() == {"type": "subscribed", "channel": f"job:{job.id}"}
        bus.publish_job(others_job, "job.progress")  # reaches neither of the owner's channels
        bus.publish_job(job, "job.progress")
        first, second = await client.recv(), await client.recv()
        assert {first["channel"], second["channel"]} == {f"user:{owner.id}", f"job:{job.id}"}
        assert first["data"]["id"] == second["data"]["id"] == str(job.id)

        watcher = await r.connect(token_for(admin))
        await watcher.recv()
        await watcher.send(type="subscribe", channel=f"job:{others_job.id}")
        assert (await watcher.recv())["type"] == "subscribed"
        await watcher.send(type="unsubscribe", channel=f"job:{others_job.id}")
        assert (await watcher.recv()) == {"type": "unsubscribed", "channel": f"job:{others_job.id}"}
        await watcher.send(type="unsubscribe", channel=f"user:{admin.id}")
        assert (await watcher.recv())["code"] == "cannot_leave_user_channel"

    relay.run(scenario)


def test_a_connection_holds_a_bounded_number_of_channels(relay, relay_settings, token_for):
    user = make_user()
    jobs = [_job(user) for _ in range(relay_settings.relay_max_channels)]

    async def scenario(r):
        client = await r.connect(token_for(user))
        await client.recv()
        for job in jobs[:-1]:
            await client.send(type="subscribe", channel=f"job:{job.id}")
            assert (await client.recv())["type"] == "subscribed"
        await client.send(type="subscribe", channel=f"job:{jobs[-1].id}")
        assert (await client.recv())["code"] == "too_many_channels"

    relay.run(scenario)


def test_resume_sends_what_was_missed_then_live_events(relay, bus, token_for):
    user = make_user()
    channel = f"user:{user.id}"
    ids = [bus.publish(channel, "test.tick", {"n": n}) for n in range(5)]

    async def scenario(r):
        client = await r.connect(token_for(user), last_event_id=ids[1])
        await client.recv()
        missed = [await client.recv() for _ in range(3)]
        assert [m["id"] for m in missed] == ids[2:]
        live = bus.publish(channel, "test.tick", {"n": 5})
        assert (await client.recv())["id"] == live

        everything = await r.connect(token_for(user), last_event_id="0")
        await everything.recv()
        assert [(await everything.recv())["data"]["n"] for _ in range(6)] == list(range(6))

        fresh = await r.connect(token_for(user))  # no last id: live only
        await fresh.recv()
        newest = bus.publish(channel, "test.tick", {"n": 6})
        assert (await fresh.recv())["id"] == newest

    relay.run(scenario)


def test_resume_from_an_event_no_longer_held_says_reset(relay, bus, token_for, redis):
    user = make_user()
    channel = f"user:{user.id}"
    gone = bus.publish(channel, "test.tick", {"n": 0})
    redis.xdel(bus.stream_key(channel), gone)  # as trimming does
    bus.publish(channel, "test.tick", {"n": 1})

    async def scenario(r):
        client = await r.connect(token_for(user), last_event_id=gone)
        await client.recv()
        assert await client.recv() == {"type": "reset", "channel": channel, "reason": "history_unavailable"}
        live = bus.publish(channel, "test.tick", {"n": 2})
        assert (await client.recv())["id"] == live

    relay.run(scenario)


def test_job_channel_resume(relay, bus, token_for):
    user = make_user()
    job = _job(user)
    bus.publish_job(job, "job.started")
    bus.publish_job(job, "job.progress")

    async def scenario(r):
        client = await r.connect(token_for(user))
        await client.recv()
        first = bus.history(f"job:{job.id}")[0]["id"]
        await client.send(type="subscribe", channel=f"job:{job.id}", last_event_id=first)
        assert (await client.recv())["type"] == "subscribed"
        replayed = await client.recv()
        assert (replayed["channel"], replayed["type"]) == (f"job:{job.id}", "job.progress")

    relay.run(scenario)


def test_an_expired_token_closes_the_connection_unless_renewed(relay, token_for):
    user = make_user()

    async def scenario(r):
        client = await r.connect(token_for(user, expires_in=1.5))
        assert (await client.recv())["type"] == "ready"
        assert await client.closed_with(timeout=4) == proto.UNAUTHENTICATED

        renewed = await r.connect(token_for(user, expires_in=1.5))
        await renewed.recv()
        await renewed.send(type="auth", token=token_for(user))
        assert (await renewed.recv_until(lambda m: m["type"] == "authenticated"))[-1]["expires_at"] > 0
        await asyncio.sleep(2)
        await renewed.send(type="ping")
        assert await renewed.recv_until(lambda m: m["type"] == "pong")

        stranger = await r.connect(token_for(user))
        await stranger.recv()
        await stranger.send(type="auth", token=token_for(make_user()))
        assert await stranger.closed_with() == proto.UNAUTHENTICATED

    relay.run(scenario)


def test_a_revoked_session_closes_the_connection_at_the_next_check(relay, token_for, settings, redis):
    user = make_user()

    async def scenario(r):
        client = await r.connect(token_for(user))
        await client.recv()
        revoked = sessions.revoke([token_for.session_id], reason="user_revoked")
        SessionCache(redis, settings.redis_prefix, ttl=settings.access_token_ttl).mark_revoked(revoked)  # as the API
        assert await client.closed_with(timeout=3) == proto.SESSION_ENDED

    relay.run(scenario)


def test_heartbeats_flow_and_a_silent_client_is_closed(relay, token_for):
    user = make_user()

    async def scenario(r):
        client = await r.connect(token_for(user))
        await client.recv()
        beats = await client.recv_until(lambda m: m["type"] == "heartbeat", timeout=2)
        assert beats[-1]["at"]
        assert await client.closed_with(timeout=5) == proto.IDLE_TIMEOUT

    relay.run(scenario)


def test_losing_the_redis_subscription_loses_no_event(relay, bus, token_for, redis):
    user = make_user()
    job = _job(user)
    channel = f"user:{user.id}"

    async def scenario(r):
        client = await r.connect(token_for(user))
        await client.recv()
        await client.send(type="subscribe", channel=f"job:{job.id}")
        await client.recv()
        sent = [bus.publish(channel, "test.tick", {"n": 0})]
        assert (await client.recv())["id"] == sent[0]

        hub = r.state.hub
        killed = [c["id"] for c in redis.client_list() if c["name"] == hub.client_name]
        assert len(killed) == 1
        redis.client_kill_filter(_id=killed[0])
        # Published while the relay has no subscription: only the streams hold these.
        sent += [bus.publish(channel, "test.tick", {"n": n}) for n in range(1, 4)]
        bus.publish_job(job, "job.progress")
        received = []
        while len([m for m in received if "id" in m]) < 5:  # 3 ticks, the job event on both channels
            received.append(await client.recv(timeout=5))
        assert [m["id"] for m in received if m.get("type") == "test.tick"] == sent[1:]
        assert sorted(m["channel"] for m in received if m.get("type") == "job.progress") == [f"job:{job.id}", channel]
        sent.append(bus.publish(channel, "test.tick", {"n": 4}))
        assert (await client.recv_until(lambda m: m.get("type") == "test.tick"))[-1]["id"] == sent[-1]

    relay.run(scenario)


def test_idle_channels_are_unsubscribed_after_the_grace_period(relay, token_for, bus):
    user = make_user()

    async def scenario(r):
        client = await r.connect(token_for(user))
        await client.recv()
        bus.publish(f"user:{user.id}", "test.tick", {})
        await client.recv()  # subscribed by now
        hub = r.state.hub
        assert hub.local_connections(f"user:{user.id}") == 1
        await client.ws.close()
        await asyncio.sleep(0.3)
        assert hub.local_connections(f"user:{user.id}") == 0
        assert f"user:{user.id}" in await hub.collect_idle()

    relay.run(scenario)


def test_binary_frames_are_a_protocol_error(relay, token_for):
    user = make_user()

    async def scenario(r):
        client = await r.connect(token_for(user))
        await client.recv()
        await client.ws.send_data(b"\x00\x01")
        assert await client.closed_with() == proto.PROTOCOL_ERROR

    relay.run(scenario)


def test_browsers_from_other_origins_are_refused_when_origins_are_configured(relay_settings, token_for):
    import dataclasses

    from relay.app import build_relay
    from tests.relay.conftest import Relay, inline

    settings = dataclasses.replace(relay_settings, cors_origins=("https://app.hearth.example",))
    relay = Relay(build_relay(settings, blocking=inline), settings)
    user = make_user()

    async def scenario(r):
        ctx = r.conductor.simulate_ws("/v1/realtime", headers={"Origin": "https://evil.example"})
        with pytest.raises(WebSocketDisconnected):  # the handshake is denied (HTTP 403)
            await ctx.__aenter__()
        ok = r.conductor.simulate_ws("/v1/realtime", headers={"Origin": "https://app.hearth.example"})
        ws = await ok.__aenter__()
        r._contexts.append(ok)
        await ws.send_text(json.dumps({"type": "auth", "token": token_for(user)}))
        assert '"ready"' in await ws.receive_text()

    relay.run(scenario)


def test_a_session_that_owes_its_second_factor_cannot_connect_or_renew_with_it(relay, token_for, tokens):
    user = make_user()

    def pending_token() -> str:
        session, _ = sessions.start_session(user, ttl=3600, user_agent="relay test", ip=None)
        token, _ = tokens.issue(user_id=user.id, role=user.role, session_id=session.id, mfa_pending=True)
        return token

    async def scenario(r):
        refused = await r.connect(pending_token())
        assert await refused.closed_with() == proto.MFA_REQUIRED
        # A connection of a session that proved both factors is not taken over by a password-only token.
        client = await r.connect(token_for(user))
        assert (await client.recv())["type"] == "ready"
        await client.send(type="auth", token=pending_token())
        assert await client.closed_with() == proto.MFA_REQUIRED

    relay.run(scenario)
