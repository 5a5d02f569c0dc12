"""The beat lease: one holder at a time, renewed by it, lapsing when it stops, released on a clean stop."""

from __future__ import annotations

import time

import redis as redis_lib

import celeryconfig
from services.leader_lease import LeaderLease
from tasks.beat import beat_lease


def test_one_holder_at_a_time_and_a_standby_takes_over_when_it_lapses(settings, redis):
    key = f"{settings.redis_prefix}beat:leader"
    first, second = LeaderLease(redis, key, ttl=0.5), LeaderLease(redis, key, ttl=0.5)
    assert first.hold() and not second.hold()
    # Renewing keeps it: past the first TTL, the holder still holds and the standby still waits.
    for _ in range(4):
        time.sleep(0.2)
        assert first.hold() and not second.hold()
    assert second.holder() == first.token
    # The holder stops renewing (a crash): the lease lapses and the standby takes it.
    time.sleep(0.6)
    assert second.hold()
    # The old holder learns it lost the lease; it does not take it back while the new one renews.
    assert not first.hold() and first.held is False


def test_a_clean_stop_hands_over_at_once_and_never_releases_anothers_lease(settings, redis):
    key = f"{settings.redis_prefix}beat:leader"
    first, second = LeaderLease(redis, key, ttl=60), LeaderLease(redis, key, ttl=60)
    assert first.hold()
    second.release()  # not the holder: nothing happens
    assert not second.hold() and second.holder() == first.token
    first.release()
    assert second.hold()


def test_an_unreachable_redis_means_not_leading():
    unreachable = redis_lib.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    lease = LeaderLease(unreachable, "beat:leader", ttl=5)
    assert lease.hold() is False and lease.holder() is None


def test_every_beat_of_a_deployment_contends_for_one_key(settings):
    assert celeryconfig.beat_scheduler == "tasks.beat:LeaderScheduler"
    one, other = beat_lease(settings), beat_lease(settings)
    assert one.key == other.key == f"{settings.redis_prefix}beat:leader"
    assert one.ttl == settings.beat_lock_ttl and one.token != other.token
