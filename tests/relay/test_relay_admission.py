"""Who may open a relay socket: the browser Origin allow-list, and the caps on sockets not yet authenticated."""

from __future__ import annotations

import dataclasses

import pytest
from falcon.errors import WebSocketDisconnected

from relay import protocol as proto
from relay.app import build_relay
from tests.factories import make_user
from tests.relay.conftest import Client, Relay, inline


def _relay(relay_settings, **changes) -> Relay:
    settings = dataclasses.replace(relay_settings, relay_auth_timeout=10, **changes)
    return Relay(build_relay(settings, blocking=inline, hub_grace=0.2), settings)


async def _open(r: Relay, remote_addr: str = "127.0.0.1", headers: dict | None = None) -> Client:
    ctx = r.conductor.simulate_ws("/v1/realtime", remote_addr=remote_addr, headers=headers)
    ws = await ctx.__aenter__()
    r._contexts.append(ctx)
    return Client(ws)


async def _refused(client: Client) -> bool:
    """True once the relay closed ``client`` with 1013 (the simulator drops the reason; see tests/integration)."""
    return await client.closed_with() == proto.TRY_AGAIN_LATER


def test_unauthenticated_sockets_are_capped_per_address(relay_settings, token_for):
    relay = _relay(relay_settings, relay_unauthenticated_per_address=3)
    user = make_user()

    async def scenario(r):
        waiting = [await _open(r, "203.0.113.5") for _ in range(3)]
        assert await _refused(await _open(r, "203.0.113.5"))
        other = await _open(r, "198.51.100.7")  # another address has its own allowance
        await other.send(type="auth", token=token_for(user))
        assert (await other.recv())["type"] == "ready"
        # An authenticated socket no longer counts: its place goes to the next one.
        await waiting[0].send(type="auth", token=token_for(user))
        assert (await waiting[0].recv())["type"] == "ready"
        late = await _open(r, "203.0.113.5")
        await late.send(type="auth", token=token_for(user))
        assert (await late.recv())["type"] == "ready"
        # So does a socket that went away.
        await waiting[1].ws.close()
        latest = await _open(r, "203.0.113.5")
        await latest.send(type="auth", token=token_for(user))
        assert (await latest.recv())["type"] == "ready"
        assert r.state.admission.count == 1 and r.state.admission.refused == 1

    relay.run(scenario)


def test_unauthenticated_sockets_are_capped_in_all(relay_settings):
    relay = _relay(relay_settings, relay_unauthenticated_per_address=2, relay_unauthenticated_max=4)

    async def scenario(r):
        for n in range(4):
            await _open(r, f"192.0.2.{n}")
        assert await _refused(await _open(r, "192.0.2.99"))
        assert r.state.admission.refusal("192.0.2.99") == "too many unauthenticated connections"

    relay.run(scenario)


def test_the_client_address_comes_from_x_forwarded_for_only_through_trusted_proxies(relay_settings):
    spoofed = _relay(relay_settings, relay_unauthenticated_per_address=2)

    async def ignore_the_header(r):
        for n in range(2):
            await _open(r, "203.0.113.9", headers={"X-Forwarded-For": f"10.0.0.{n}"})
        # Without a trusted proxy the header is the client's own claim: the peer address counts.
        assert await _refused(await _open(r, "203.0.113.9", headers={"X-Forwarded-For": "10.0.0.99"}))

    spoofed.run(ignore_the_header)

    proxied = _relay(relay_settings, relay_unauthenticated_per_address=2, trusted_proxies=1)

    async def behind_a_proxy(r):
        proxy = "127.0.0.1"
        for client in ("198.51.100.1", "198.51.100.1", "198.51.100.2", "198.51.100.2"):
            # What a client writes itself is further left and does not count.
            await _open(r, proxy, headers={"X-Forwarded-For": f"6.6.6.6, {client}"})
        assert await _refused(await _open(r, proxy, headers={"X-Forwarded-For": "198.51.100.2"}))
        assert r.state.admission.refusal("198.51.100.2") == "too many unauthenticated connections from this address"
        assert r.state.admission.waiting == {"198.51.100.1": 2, "198.51.100.2": 2}

    proxied.run(behind_a_proxy)


@pytest.mark.parametrize(
    ("origins", "origin", "allowed"),
    [
        ((), "https://evil.example", False),  # no allow-list: no browser page may connect
        ((), None, True),  # a script or an app sends no Origin
        (("http://localhost:5173",), "http://localhost:5173", True),
        (("http://localhost:5173",), "http://localhost:5174", False),
        (("http://localhost:5173",), None, True),
        (("*",), "https://anywhere.example", True),
    ],
)
def test_browser_origins_follow_cors_origins(relay_settings, token_for, origins, origin, allowed):
    relay = _relay(relay_settings, cors_origins=origins)
    user = make_user()

    async def scenario(r):
        headers = {"Origin": origin} if origin else None
        if not allowed:
            with pytest.raises(WebSocketDisconnected):  # the handshake is denied (HTTP 403)
                await _open(r, headers=headers)
            return
        client = await _open(r, headers=headers)
        await client.send(type="auth", token=token_for(user))
        assert (await client.recv())["type"] == "ready"

    relay.run(scenario)
