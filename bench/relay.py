"""``python -m bench relay``: relay fan-out of events addressed to users, beside raw Redis pub/sub.

* ``relay``: ``uvicorn relay.app:app`` (the flags production and the tests use) with
  BENCH_WS_CLIENTS (2000) websocket clients in another process, each
  authenticated (first message ``{"type": "auth", ...}``) as a user of its own.
  ``EventBus.publish`` sends BENCH_RELAY_RATE (2000) events a second for
  BENCH_RELAY_SECONDS (10) seconds, each to the next user's channel in turn,
  with the publish time in its data; the clients record receive time minus
  publish time. events/s is what the clients received, over the time between
  the first and the last delivery.
* ``redis-pubsub``: the same rate and message size published straight to one
  Redis channel read by one ``redis.asyncio`` subscriber in another process.

The clients are ``bench/relay_client.py``, in BENCH_WS_CLIENT_PROCESSES (2) processes of
their own (the sockets split between them), so that one client process's event loop is not
what is measured; BENCH_RELAY_CLIENT_PING (20) is how often each socket pings, as real
clients do.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
import time
import uuid

from bench import Row, Run, benchmark, servers, stack
from bench.client_process import client_process, raise_nofile
from bench.relay_client import merge

TARGET_P99_MS = 50.0
PAD = 200  # bytes of filler in each event's data: roughly the size of a small job view


@benchmark("relay", "relay: events addressed to users over 2,000 websockets vs raw Redis pub/sub")
def relay(run: Run) -> list[Row]:
    clients = int(os.environ.get("BENCH_WS_CLIENTS", "2000"))
    rate = float(os.environ.get("BENCH_RELAY_RATE", "2000"))
    seconds = float(os.environ.get("BENCH_RELAY_SECONDS", "10"))
    raise_nofile(clients * 2 + 1024)
    with stack.workspace(run, "relay") as (hearth, directory, _):
        return _measure(run, hearth, directory, clients, rate, seconds)


def _measure(run, hearth, directory, clients, rate, seconds) -> list[Row]:
    import redis as redis_lib

    from models.accounts import AuthSession, User
    from models.base import utcnow
    from models.db import db
    from services.events import EventBus
    from services.tokens import KeyRing, TokenIssuer
    from settings import Settings

    settings = Settings.from_env(hearth.env)
    issuer = TokenIssuer(
        KeyRing.from_settings(settings),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=settings.access_token_ttl,
    )
    started = time.perf_counter()
    with db.connection_context():
        now = utcnow()
        users = [
            {
                "id": uuid.uuid4(),
                "email": f"ws{i}@bench.hearth.test",
                "full_name": f"WS {i}",
                "role": "buyer",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(clients)
        ]
        sessions = [
            {
                "id": uuid.uuid4(),
                "user": u["id"],
                "expires_at": now + datetime.timedelta(hours=2),
                "created_at": now,
                "last_used_at": now,
            }
            for u in users
        ]
        with db.atomic():
            for start in range(0, clients, 1000):
                User.insert_many(users[start : start + 1000]).execute()
                AuthSession.insert_many(sessions[start : start + 1000]).execute()
    tokens = [
        issuer.issue(user_id=u["id"], role="buyer", session_id=s["id"])[0] for u, s in zip(users, sessions, strict=True)
    ]
    run.log(f"relay: {clients} users, sessions and tokens in {time.perf_counter() - started:.1f} s")

    redis = redis_lib.Redis.from_url(stack.REDIS_URL)
    bus = EventBus(redis, hearth.redis_prefix)
    channels = [f"user:{u['id']}" for u in users]
    processes = max(1, int(os.environ.get("BENCH_WS_CLIENT_PROCESSES", "2")))
    ping_every = float(os.environ.get("BENCH_RELAY_CLIENT_PING", "20"))
    run.settings["relay"] = (
        f"uvicorn relay.app:app (websockets-sansio), {clients} clients in {processes} asyncio "
        f"processes pinging every {ping_every:g} s, {rate:g} events/s for {seconds:g} s, {PAD}-byte pad"
    )

    # Every client connects from this one address at once: lift the relay's per-address cap on
    # sockets that have not authenticated yet, as the messaging bench does.
    env = {**hearth.env, "RELAY_UNAUTHENTICATED_PER_ADDRESS": "1000"}
    with servers.relay_server(env, directory / "relay.log") as url, contextlib.ExitStack() as stack_of_clients:
        group = [
            stack_of_clients.enter_context(
                _client(
                    directory,
                    {"mode": "relay", "url": url, "tokens": tokens[k::processes], "ping_every": ping_every},
                    name=f"client-relay-{k}",
                )
            )
            for k in range(processes)
        ]
        run.log(f"relay: {sum(c.ready for c in group)} clients authenticated; publishing")
        # One event to every connection first, then a pause: the first delivery on each
        # fresh connection is slower (the relay and the client both warm up their
        # per-connection paths), and is reported apart from the steady state.
        publish(
            rate,
            clients / rate,
            lambda i, data: bus.publish(channels[i % clients], "bench.ping", dict(data, warmup=True)),
        )
        time.sleep(1.0)
        sent, pub_rate = publish(rate, seconds, lambda i, data: bus.publish(channels[i % clients], "bench.ping", data))
        # Client process k holds the sockets of users k, k + processes, ...: its share of the events.
        shares = [sum(1 for i in range(sent) if (i % clients) % processes == k) for k in range(processes)]
        relay_result = merge([c.finish(expected=share) for c, share in zip(group, shares, strict=True)])
    run.log(f"relay: received {relay_result['received']} of {sent}; p99 {relay_result['p99_ms']:.1f} ms")

    # --- baseline: raw Redis pub/sub to one subscriber --------------------------------------------
    channel = f"{hearth.redis_prefix}raw-bench"
    sample = (
        '{"id":"1764145530123-0","channel":"'
        + channels[0]
        + '","type":"bench.ping","at":"'
        + utcnow().isoformat()
        + '","data":'
    )
    config = {"mode": "raw", "redis_url": stack.REDIS_URL, "channel": channel}
    with _client(directory, config) as client:
        sent_raw, raw_pub_rate = publish(
            rate,
            seconds,
            lambda i, data: redis.publish(channel, sample + json.dumps(data, separators=(",", ":")) + "}"),
        )
        raw_result = client.finish(expected=sent_raw)
    redis.close()
    rows = [_row("redis-pubsub", raw_result, sent_raw, raw_pub_rate, None)]
    rows += [_row("relay", relay_result, sent, pub_rate, "redis-pubsub")]
    p99 = relay_result["p99_ms"]
    verdict = "met" if p99 < TARGET_P99_MS else "MISSED"
    run.note(
        f"relay p99 = {p99:.0f} ms (target < {TARGET_P99_MS:.0f} ms): {verdict}; {clients} websockets, "
        f"{relay_result['received']}/{sent} events delivered at {relay_result['events_per_s']:.0f}/s "
        f"(published at {pub_rate:.0f}/s); raw Redis pub/sub p99 {raw_result['p99_ms']:.1f} ms"
    )
    closed = relay_result.get("closed", {})
    if closed:
        run.note(f"relay: sockets closed by the relay during the run, by close code: {closed}")
    if relay_result.get("warmup_events"):
        run.note(
            f"relay: before measuring, one event went to each of the {relay_result['warmup_events']} "
            f"connections (the first delivery on a fresh connection): p99 "
            f"{relay_result['warmup_p99_ms']:.0f} ms, max {relay_result['warmup_max_ms']:.0f} ms; "
            "those are not in the figures above"
        )
    run.note(
        "relay: latency = client receive time - publish time in the event's data (same machine clock); "
        "it includes the client process's own queueing, so it is an upper bound on the relay's share"
    )
    return rows


def _row(name: str, result: dict, sent: int, pub_rate: float, baseline: str | None) -> Row:
    return Row(
        name,
        result["events_per_s"],
        result["p50_ms"],
        result["p99_ms"],
        baseline=baseline,
        requests=result["received"],
        errors=max(0, sent - result["received"]),
        detail={
            "published": sent,
            "published_per_s": round(pub_rate, 1),
            "max_ms": result["max_ms"],
            "clients": result.get("clients", 1),
        },
    )


def publish(rate: float, seconds: float, send) -> tuple[int, float]:
    """``send(i, data)`` ``rate`` times a second for ``seconds``, ``data`` carrying its send time ``t``;
    how many were sent and at what rate."""
    total = int(rate * seconds)
    interval = 1.0 / rate
    started = time.perf_counter()
    next_at = started
    pad = "x" * PAD
    for i in range(total):
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(i, {"t": time.time(), "seq": i, "pad": pad})
        next_at = max(next_at + interval, time.perf_counter() - interval)
    return total, total / (time.perf_counter() - started)


def _client(directory: pathlib.Path, config: dict, name: str | None = None):
    return client_process("bench.relay_client", directory, name or f"client-{config['mode']}", config)
