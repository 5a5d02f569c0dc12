"""What the channel rules remember: one ``ChannelCache`` per relay, bounded, emptied whole."""

from __future__ import annotations

from models.jobs import Job
from relay.app import build_relay
from relay.channels import ChannelCache
from tests.factories import make_user
from tests.relay.conftest import Relay, inline


def test_each_relay_built_by_the_factory_keeps_its_own_channel_decisions(relay, relay_settings, token_for):
    owner = make_user()
    job = Job.create(kind="jobs.selftest", owner=owner.id)
    other = Relay(build_relay(relay_settings, blocking=inline, hub_grace=0.2), relay_settings)
    assert other.state.auth.channels is not relay.state.auth.channels

    async def scenario(r):
        client = await r.connect(token_for(owner))
        assert (await client.recv())["type"] == "ready"
        await client.send(type="subscribe", channel=f"job:{job.id}")
        assert await client.recv() == {"type": "subscribed", "channel": f"job:{job.id}"}

    relay.run(scenario)
    assert relay.state.auth.channels.job_owners == {str(job.id): str(owner.id)}
    assert other.state.auth.channels.job_owners == {}


def test_each_map_is_emptied_whole_when_it_reaches_its_bound():
    cache = ChannelCache(max_job_owners=2, max_participants=2)
    cache.remember_owner("j1", "u1")
    cache.remember_owner("j2", "u2")
    assert cache.job_owners == {"j1": "u1", "j2": "u2"}
    cache.remember_owner("j3", "u3")
    assert cache.job_owners == {"j3": "u3"}

    cache.remember_participant("c1", "u1")
    cache.remember_participant("c2", "u1")
    cache.remember_participant("c3", "u1")
    assert cache.participants == {("c3", "u1"): True}
    assert cache.job_owners == {"j3": "u3"}  # the bounds are apart
