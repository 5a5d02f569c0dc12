"""The relay bench's client process: websockets authenticated as users, or one raw Redis subscriber.

``python -m bench.relay_client client CONFIG.json`` connects (mode ``relay``: one
websocket per token of the config, each authenticated; mode ``raw``: one
``redis.asyncio`` subscriber of the config's channel), prints ``READY <n>``, waits
for a ``STOP expected`` line on stdin, and prints its figures as one JSON line:
receive time (taken before the JSON is decoded) minus the publish time in each
event's data, with the raw samples so that ``bench/relay.py`` can merge several
client processes (``merge``).

The clients behave as the protocol asks of real ones: each sends a ``ping`` every
``ping_every`` seconds (the relay closes a socket it has not heard from for
``RELAY_IDLE_TIMEOUT``; opening 10,000 sockets can take longer than that). The
process's own garbage collector is kept from pausing it while it measures (its
heap is frozen once the sockets are open): a full collection over 10,000 sockets'
objects took seconds on a loaded machine and showed up as relay latency.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import pathlib
import statistics
import sys
import time

from websockets.exceptions import ConnectionClosed

from bench.client_process import raise_nofile


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class Stats:
    def __init__(self):
        self.latencies: list[float] = []
        self.warmup: list[float] = []
        self.first = self.last = None
        self.closes: collections.Counter = collections.Counter()

    def record(self, now: float, published: float) -> None:
        self.latencies.append((now - published) * 1000)
        if self.first is None:
            self.first = now
        self.last = now

    def result(self, clients: int) -> dict:
        return summary(self.latencies, self.warmup, self.first, self.last, clients, self.closes)


def summary(lat: list[float], warmup: list[float], first, last, clients: int, closes) -> dict:
    """The figures of one client process, or of several merged; with the samples, for merging."""
    span = (last - first) if first is not None and last > first else 0
    return {
        "received": len(lat),
        "clients": clients,
        "events_per_s": (len(lat) - 1) / span if span else 0.0,
        "p50_ms": statistics.median(lat) if lat else float("nan"),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else float("nan"),
        "warmup_events": len(warmup),
        "warmup_p99_ms": percentile(warmup, 99) if warmup else None,
        "warmup_max_ms": max(warmup) if warmup else None,
        "closed": dict(closes),
        "first": first,
        "last": last,
        "samples": lat,
        "warmup_samples": warmup,
    }


def merge(results: list[dict]) -> dict:
    """One result from several client processes' (their samples pooled)."""
    firsts = [r["first"] for r in results if r["first"] is not None]
    closes: collections.Counter = collections.Counter()
    for r in results:
        closes.update(r["closed"])
    return summary(
        [x for r in results for x in r["samples"]],
        [x for r in results for x in r["warmup_samples"]],
        min(firsts) if firsts else None,
        max((r["last"] for r in results if r["last"] is not None), default=None),
        sum(r["clients"] for r in results),
        closes,
    )


async def _stdin_line() -> str:
    return await asyncio.to_thread(sys.stdin.readline)


async def _until_stop(stats: Stats) -> None:
    line = await _stdin_line()
    expected = int(line.split()[1]) if line.startswith("STOP") else 0
    deadline = time.monotonic() + 15
    while len(stats.latencies) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)


async def _relay_clients(config: dict) -> dict:
    from websockets.asyncio.client import connect

    url, tokens = config["url"], config["tokens"]
    stats = Stats()
    gate = asyncio.Semaphore(100)
    connections = []

    async def open_one(token: str):
        async with gate:
            ws = await connect(
                url, compression=None, open_timeout=60, ping_interval=None, close_timeout=2, max_queue=None
            )
            await ws.send(json.dumps({"type": "auth", "token": token}))
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "ready":
                    break
                if message.get("type") == "error":
                    raise RuntimeError(f"auth failed: {message}")
            connections.append(ws)
            return ws

    async def reader(ws):
        loads, record, now = json.loads, stats.record, time.time
        with contextlib.suppress(ConnectionClosed):  # a closed connection ends its reader
            async for raw in ws:
                at = now()
                message = loads(raw)
                if "id" in message:
                    data = message["data"]
                    if data.get("warmup"):
                        stats.warmup.append((at - data["t"]) * 1000)
                    else:
                        record(at, data["t"])
        stats.closes[str(ws.close_code)] += 1

    async def pinger():
        # Every open socket pings once per ``ping_every`` seconds, spread evenly over the interval;
        # from the first socket on, as opening the rest can take longer than the idle timeout.
        every = float(config.get("ping_every", 20))
        ping = json.dumps({"type": "ping"})
        while True:
            if not connections:
                await asyncio.sleep(0.5)
            for ws in list(connections):
                with contextlib.suppress(ConnectionClosed):
                    await ws.send(ping)
                await asyncio.sleep(every / len(connections))

    readers = []

    # Readers start as sockets open: a socket that waited for all the others would not be reading
    # (or pinging) for as long as the rest take to open.
    async def open_and_read(token: str):
        ws = await open_one(token)
        readers.append(asyncio.create_task(reader(ws)))
        return ws

    readers.append(asyncio.create_task(pinger()))
    opened = await asyncio.gather(*(open_and_read(t) for t in tokens))
    gc.collect()
    gc.freeze()  # the sockets' objects are never scanned again while measuring
    print(f"READY {len(opened)}", flush=True)
    await _until_stop(stats)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return stats.result(len(opened))


async def _raw_subscriber(config: dict) -> dict:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(config["redis_url"])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(config["channel"])
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    stats = Stats()

    async def reader():
        loads, now = json.loads, time.time
        async for message in pubsub.listen():
            if message["type"] == "message":
                at = now()
                stats.record(at, loads(message["data"])["data"]["t"])

    task = asyncio.create_task(reader())
    print("READY 1", flush=True)
    await _until_stop(stats)
    task.cancel()
    await pubsub.aclose()
    await client.aclose()
    return stats.result(1)


def client_main(config_path: str) -> None:
    config = json.loads(pathlib.Path(config_path).read_text())
    raise_nofile(len(config.get("tokens", ())) + 1024)
    runner = _relay_clients if config["mode"] == "relay" else _raw_subscriber
    result = asyncio.run(runner(config))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client_main(sys.argv[2])
    else:
        sys.exit(
            "usage: python -m bench.relay_client client CONFIG.json (run the benchmark with `python -m bench relay`)"
        )
