"""The relay bench's client process: websockets authenticated as users, or one raw Redis subscriber.

``python -m bench.relay_client client CONFIG.json`` connects (mode ``relay``: one
websocket per token of the config, each authenticated; mode ``raw``: one
``redis.asyncio`` subscriber of the config's channel), prints ``READY <n>``, waits
for a ``STOP expected`` line on stdin, and prints its figures as one JSON line:
receive time minus the publish time in each event's data. ``bench/relay.py``
drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
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

    def record(self, now: float, published: float) -> None:
        self.latencies.append((now - published) * 1000)
        if self.first is None:
            self.first = now
        self.last = now

    def result(self, clients: int) -> dict:
        lat = self.latencies
        span = (self.last - self.first) if self.first is not None and self.last > self.first else 0
        return {
            "received": len(lat),
            "clients": clients,
            "events_per_s": (len(lat) - 1) / span if span else 0.0,
            "p50_ms": statistics.median(lat) if lat else float("nan"),
            "p99_ms": percentile(lat, 99),
            "max_ms": max(lat) if lat else float("nan"),
            "warmup_events": len(self.warmup),
            "warmup_p99_ms": percentile(self.warmup, 99) if self.warmup else None,
            "warmup_max_ms": max(self.warmup) if self.warmup else None,
        }


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

    opened = await asyncio.gather(*(open_one(t) for t in tokens))
    readers = [asyncio.create_task(reader(ws)) for ws in opened]
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
