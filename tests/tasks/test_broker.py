"""The worker's broker connection: kombu's cleanup of a lost Redis connection never stops the worker."""

from __future__ import annotations

import pytest
from kombu import Connection
from kombu.common import ignore_errors

import celeryconfig
import tasks.app  # noqa: F401  (installs the guard, as every worker does)
from tasks.broker import BrokerConnectionReleased
from tests.tasks.live import BrokerServer


def test_a_released_broker_connection_is_a_connection_error_not_an_attribute_error(tmp_path):
    broker = BrokerServer(tmp_path).start()
    try:
        conn = Connection(broker.url, transport_options=celeryconfig.broker_transport_options)
        channel = conn.channel()
        channel.client.ping()
        broker.stop()
        # What Celery's consumer does when the broker goes away: collect the connection (kombu
        # releases the transport), then close what is left. A channel whose pool was dropped
        # rebuilds it from the released transport: before the guard, AttributeError on
        # ``None.hostname``, which no cleanup ignores and which stopped the worker for good.
        channel._disconnect_pools()
        conn.collect(socket_timeout=0.5)
        with pytest.raises(BrokerConnectionReleased):
            channel.pool  # noqa: B018
        assert isinstance(BrokerConnectionReleased("x"), conn.connection_errors)
        with ignore_errors(conn):  # what kombu's and Celery's cleanup wrap around closing
            channel.pool  # noqa: B018
    finally:
        broker.stop()


def test_the_worker_retries_the_broker_for_as_long_as_it_is_away():
    assert celeryconfig.broker_connection_retry is True
    assert celeryconfig.broker_connection_retry_on_startup is True
    assert celeryconfig.broker_connection_max_retries is None
