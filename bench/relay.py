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

The client process is this module: ``python -m bench.relay client CONFIG.json``.
It prints ``READY <n>`` once connected, waits for a line on stdin, and prints
its figures as one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import pathlib
import resource
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

from websockets.exceptions import ConnectionClosed

from bench import Row, Run, benchmark, servers, stack

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent
TARGET_P99_MS = 50.0
PAD = 200  # bytes of filler in each event's data: roughly the size of a small job view


def _raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(hard, max(soft, wanted)) if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# --- the benchmark (parent process) -----------------------------------------------------------


@benchmark("relay", "relay: events addressed to users over 2,000 websockets vs raw Redis pub/sub")
def relay(run: Run) -> list[Row]:
    clients = int(os.environ.get("BENCH_WS_CLIENTS", "2000"))
    rate = float(os.environ.get("BENCH_RELAY_RATE", "2000"))
    seconds = float(os.environ.get("BENCH_RELAY_SECONDS", "10"))
    _raise_nofile(clients * 2 + 1024)
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
    run.settings["relay"] = (
        f"uvicorn relay.app:app (websockets-sansio), {clients} clients in one asyncio "
        f"process, {rate:g} events/s for {seconds:g} s, {PAD}-byte pad"
    )

    with _relay_server(hearth.env, directory / "relay.log") as url:
        config = {"mode": "relay", "url": url, "tokens": tokens}
        with _client(directory, config, run) as client:
            run.log(f"relay: {client.ready} clients authenticated; publishing")
            # One event to every connection first, then a pause: the first delivery on each
            # fresh connection is slower (the relay and the client both warm up their
            # per-connection paths), and is reported apart from the steady state.
            _publish(
                rate,
                clients / rate,
                lambda i, data: bus.publish(channels[i % clients], "bench.ping", dict(data, warmup=True)),
            )
            time.sleep(1.0)
            sent, pub_rate = _publish(
                rate, seconds, lambda i, data: bus.publish(channels[i % clients], "bench.ping", data)
            )
            relay_result = client.finish(expected=sent)
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
    with _client(directory, config, run) as client:
        sent_raw, raw_pub_rate = _publish(
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


def _publish(rate: float, seconds: float, send) -> tuple[int, float]:
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


@contextlib.contextmanager
def _relay_server(env: dict, log_path: pathlib.Path):
    port = servers.free_port()
    argv = [
        str(BIN / "uvicorn"),
        "relay.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "on",
        "--ws",
        "websockets-sansio",
        "--ws-max-size",
        "65536",
        "--ws-ping-interval",
        "20",
        "--ws-ping-timeout",
        "20",
        "--timeout-graceful-shutdown",
        "5",
        "--log-level",
        "warning",
        "--no-access-log",
        "--backlog",
        "4096",
    ]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=servers.environment(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the relay did not start:\n" + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


class _ClientProcess:
    def __init__(self, popen):
        self.popen = popen
        self.ready = 0

    def wait_ready(self, timeout: float) -> None:
        line = _readline(self.popen, timeout)
        if not line.startswith("READY"):
            raise RuntimeError(f"the client process did not get ready: {line!r}")
        self.ready = int(line.split()[1])

    def finish(self, expected: int) -> dict:
        self.popen.stdin.write(f"STOP {expected}\n")
        self.popen.stdin.flush()
        return json.loads(_readline(self.popen, 60))


def _readline(popen, timeout: float) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(popen.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError("the client process did not answer in time")
    line = popen.stdout.readline()
    if not line:
        raise RuntimeError("the client process ended early")
    return line.strip()


@contextlib.contextmanager
def client_process(module: str, directory: pathlib.Path, name: str, config: dict, kind=None):
    """A load-generating client (``python -m <module> client <config>``), ready; stopped afterwards.

    ``kind``: the ``_ClientProcess`` subclass that talks to it.
    """
    path = directory / f"{name}.json"
    path.write_text(json.dumps(config))
    with open(directory / f"{name}.log", "ab") as err:
        popen = subprocess.Popen(
            [sys.executable, "-m", module, "client", str(path)],
            cwd=ROOT,
            env=servers.environment({}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        client = (kind or _ClientProcess)(popen)
        client.wait_ready(180)
        yield client
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def _client(directory: pathlib.Path, config: dict, run: Run):
    return client_process("bench.relay", directory, f"client-{config['mode']}", config)


# --- the client process ---------------------------------------------------------------------


class _Stats:
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


async def _until_stop(stats: _Stats) -> None:
    line = await _stdin_line()
    expected = int(line.split()[1]) if line.startswith("STOP") else 0
    deadline = time.monotonic() + 15
    while len(stats.latencies) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)


async def _relay_clients(config: dict) -> dict:
    from websockets.asyncio.client import connect

    url, tokens = config["url"], config["tokens"]
    stats = _Stats()
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
    stats = _Stats()

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
    _raise_nofile(len(config.get("tokens", ())) + 1024)
    runner = _relay_clients if config["mode"] == "relay" else _raw_subscriber
    result = asyncio.run(runner(config))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client_main(sys.argv[2])
    else:
        sys.exit("usage: python -m bench.relay client CONFIG.json (run the benchmark with `python -m bench relay`)")
