"""The worker's hold on its Redis broker across outages.

When Redis goes away under a running worker, Celery's consumer collects the
broken connection (kombu releases the transport: ``transport.client`` becomes
None) and then closes it and its channels. A channel that needs a new Redis
client on that path (restoring unacknowledged messages, deleting an
auto-delete queue) rebuilds its connection pool from ``transport.client``, and
kombu's Redis transport reads ``conninfo.hostname`` from None: an
``AttributeError`` that none of kombu's or Celery's "ignore connection errors"
guards catch, so the worker stops with ``Unrecoverable error`` instead of
reconnecting (the same failure as celery/kombu#582, still possible in kombu 5.7).

``guard_released_connections()`` makes that case the connection error it is:
the cleanup ignores it, and the consumer reconnects as it does for any other
broker failure (``celeryconfig.broker_connection_max_retries = None``: for as
long as the outage lasts).
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis


class BrokerConnectionReleased(kombu_redis.get_redis_ConnectionError()):
    """A Redis channel was asked for a client after its broker connection was released."""


def guard_released_connections() -> None:
    """Patch kombu's Redis channel once: no client from a released connection (idempotent)."""
    channel = kombu_redis.Channel
    if getattr(channel._connparams, "hearth_guarded", False):
        return
    original = channel._connparams

    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport is None or transport.client is None:
            raise BrokerConnectionReleased("the broker connection was released; reconnecting")
        return original(self, asynchronous)

    _connparams.hearth_guarded = True
    channel._connparams = _connparams


__all__ = ["BrokerConnectionReleased", "guard_released_connections"]
