"""The event bus: one envelope format, a capped stream per channel, live and stored events identical."""

from __future__ import annotations

import datetime

import msgspec
import pytest

from models.jobs import Job
from services.events import EventBus, InvalidChannel, envelope_id, parse_event_id
from tests.factories import make_user


def test_an_event_is_stored_and_published_with_the_same_id_and_bytes(redis, settings):
    bus = EventBus(redis, settings.redis_prefix)
    pubsub = redis.pubsub()
    pubsub.subscribe(bus.channel_key("user:abc"), bus.channel_key("job:xyz"))
    for _ in range(2):
        pubsub.get_message(timeout=1)  # subscribe confirmations

    event_id = bus.publish("user:abc", "job.progress", {"percent": 40}, also=("job:xyz",))
    live = [pubsub.get_message(timeout=1)["data"].decode() for _ in range(2)]
    pubsub.close()

    user_event = msgspec.json.decode(live[0])
    assert list(user_event) == ["id", "channel", "type", "at", "data"]
    assert user_event["id"] == event_id == envelope_id(live[0])
    assert (user_event["channel"], user_event["type"], user_event["data"]) == (
        "user:abc",
        "job.progress",
        {"percent": 40},
    )
    assert datetime.datetime.fromisoformat(user_event["at"]).tzinfo is not None
    job_event = msgspec.json.decode(live[1])
    assert job_event["channel"] == "job:xyz" and job_event["at"] == user_event["at"]

    # What a reconnecting client is sent from the streams is what was published live.
    stored = bus.history("user:abc")
    assert stored == [user_event]
    assert bus.history("job:xyz") == [job_event]


def test_ids_grow_within_a_channel_and_history_resumes_after_an_id(redis, settings):
    bus = EventBus(redis, settings.redis_prefix)
    ids = [bus.publish("user:abc", "test.tick", {"n": n}) for n in range(5)]
    assert [parse_event_id(i) for i in ids] == sorted(parse_event_id(i) for i in ids)
    assert [e["data"]["n"] for e in bus.history("user:abc", after=ids[1])] == [2, 3, 4]
    assert bus.history("user:abc", after=ids[-1]) == []


def test_streams_are_capped_and_expire(redis, settings):
    bus = EventBus(redis, settings.redis_prefix, maxlen=10)
    for n in range(300):
        bus.publish("user:abc", "test.tick", {"n": n})
    assert redis.xlen(bus.stream_key("user:abc")) < 300  # approximate trimming, in whole nodes
    assert bus.history("user:abc")[-1]["data"]["n"] == 299
    assert 0 < redis.ttl(bus.stream_key("user:abc")) <= 7 * 24 * 3600


def test_job_events_go_to_the_owner_and_the_job_channel(redis, settings):
    bus = EventBus(redis, settings.redis_prefix)
    owner = make_user()
    job = Job.create(kind="jobs.selftest", owner=owner.id)
    bus.publish_job(job, "job.queued")
    (user_event,) = bus.history(f"user:{owner.id}")
    (job_event,) = bus.history(f"job:{job.id}")
    assert user_event["data"] == job_event["data"] == msgspec.json.decode(msgspec.json.encode(job.view()))
    assert bus.publish_job(Job(kind="x", owner=None), "job.queued") is None  # system jobs have no audience


@pytest.mark.parametrize("channel", ["user", "user:", 'user:a"b', "USER:abc", "user:" + "a" * 65, "job:a b"])
def test_channel_names_are_checked(redis, settings, channel):
    with pytest.raises(InvalidChannel):
        EventBus(redis, settings.redis_prefix).publish(channel, "test.tick", {})
