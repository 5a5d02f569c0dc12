"""The beat scheduler Hearth runs: one beat sends the schedule, any other stands by.

``LeaderScheduler`` (``celeryconfig.beat_scheduler``) is Celery's persistent
scheduler behind a ``services.leader_lease.LeaderLease`` in Redis. Every tick it
takes or renews the lease (at least every third of ``BEAT_LOCK_TTL``); only the
holder sends due tasks. A second beat started by mistake, or on purpose as a warm
standby on another host, sends nothing: it marks every entry as just run (so it
does not fire a backlog when it takes over) and tries again next tick. When the
holder stops (SIGTERM releases the lease; a crash lets it lapse after
``BEAT_LOCK_TTL``), the standby takes over within a tick.

Standing by rather than refusing to start was chosen so that a deployment may
run a beat on two hosts and survive losing either.
"""

from __future__ import annotations

import redis
from celery.beat import PersistentScheduler

from services.leader_lease import LeaderLease

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def beat_lease(settings) -> LeaderLease:
    """The lease every beat of one deployment (one ``REDIS_PREFIX``) contends for."""
    client = redis.Redis.from_url(settings.redis_url or DEFAULT_REDIS_URL, socket_timeout=5)
    return LeaderLease(client, f"{settings.redis_prefix}beat:leader", ttl=settings.beat_lock_ttl)


class LeaderScheduler(PersistentScheduler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lease = beat_lease(self.app.conf.hearth_settings)

    def tick(self, *args, **kwargs) -> float:
        renew_within = self.lease.ttl / 3
        if not self.lease.hold():
            self._mark_all_run()
            return renew_within
        return min(super().tick(*args, **kwargs), renew_within)

    def _mark_all_run(self) -> None:
        # The leader sends these; were they left as they are, taking over would send every entry
        # that fell due while standing by at once.
        now = self.app.now()
        for entry in self.schedule.values():
            entry.last_run_at = now
        self._heap = None

    def close(self) -> None:
        super().close()
        if self.lease.held:
            self.lease.release()


__all__ = ["LeaderScheduler", "beat_lease"]
