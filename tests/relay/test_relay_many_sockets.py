"""What keeps a relay's cost per socket low: subscriptions asked for together, sessions re-read together."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from models import sessions
from models.jobs import Job
from models.session_cache import SessionCache
from relay import protocol as proto
from relay.app import build_relay
from relay.hub import Hub
from tests.factories import make_user
from tests.relay.conftest import Relay, inline


@pytest.fixture
def swept(relay_settings):
    """A relay whose own sweep waits a minute: the test's sweeps are the only ones."""
    quiet = dataclasses.replace(relay_settings, relay_heartbeat_interval=60, relay_idle_timeout=120)
    return Relay(build_relay(quiet, blocking=inline, hub_grace=0.2), quiet)


def _subscribe_calls(redis) -> int:
    return int(redis.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0))


class _Socket:
    def __init__(self):
        self.events: list[str] = []

    def deliver(self, channel, event_id, text):
        self.events.append(text)


def test_channels_joined_together_are_subscribed_in_one_command(settings, redis, bus):
    hub = Hub(settings.redis_url, settings.redis_prefix, None)
    sockets = [_Socket() for _ in range(120)]
    channels = [f"user:{make_user().id}" for _ in sockets]

    async def scenario():
        await hub.start()
        try:
            before = _subscribe_calls(redis)
            await asyncio.gather(*(hub.join(channel, s) for channel, s in zip(channels, sockets, strict=True)))
            joined = _subscribe_calls(redis) - before
            for channel in channels:
                bus.publish(channel, "test.tick", {})
            for _ in range(100):
                if all(s.events for s in sockets):
                    break
                await asyncio.sleep(0.02)
        finally:
            await hub.stop()
        return joined

    # Every join returned (Redis confirmed each channel), from one SUBSCRIBE, not 120 round trips.
    assert asyncio.run(scenario()) == 1
    assert all(len(s.events) == 1 for s in sockets)
    assert [channel in s.events[0] for channel, s in zip(channels, sockets, strict=True)] == [True] * len(sockets)


def test_one_sweep_rereads_every_socket_and_ends_only_the_revoked_session(swept, token_for, settings, redis):
    users = [make_user() for _ in range(3)]
    cache = SessionCache(redis, settings.redis_prefix, ttl=settings.access_token_ttl)

    async def scenario(r):
        clients, session_ids = [], []
        for user in users:
            clients.append(await r.connect(token_for(user)))
            session_ids.append(token_for.session_id)
            await clients[-1].recv()
        cache.mark_revoked(sessions.revoke([session_ids[1]], reason="user_revoked"))  # as the API does
        assert await r.state.watch.sweep() == 3
        assert await clients[1].closed_with(timeout=2) == proto.SESSION_ENDED
        for client in (clients[0], clients[2]):
            await client.send(type="ping")
            assert (await client.recv())["type"] == "pong"
        assert await r.state.watch.sweep() == 2  # the closed socket is no longer watched

    swept.run(scenario)


def test_a_role_taken_away_is_seen_by_the_sweep_and_its_channels_rechecked(swept, token_for, settings, redis):
    owner, admin = make_user(), make_user(role="admin")
    job = Job.create(kind="jobs.selftest", owner=owner.id)
    cache = SessionCache(redis, settings.redis_prefix, ttl=settings.access_token_ttl)

    async def scenario(r):
        watcher = await r.connect(token_for(admin))
        await watcher.recv()
        await watcher.send(type="subscribe", channel=f"job:{job.id}")
        assert (await watcher.recv())["type"] == "subscribed"
        cache.set_role([token_for.session_id], "buyer")  # as the API does when an admin's role changes
        await r.state.watch.sweep()
        assert await watcher.recv() == {"type": "unsubscribed", "channel": f"job:{job.id}", "reason": "forbidden"}

    swept.run(scenario)
