"""The messaging bench's client process: one websocket per recipient, counting what arrives.

``python -m bench.messaging_client client CONFIG`` opens every socket of the config
(authenticated, subscribed to its channel), says ``READY n``, then answers each
``COLLECT expected`` line with the figures of the messages received since the last one
(a message delivered twice counts once). ``bench/messaging.py`` drives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
import sys
import time

from websockets.exceptions import ConnectionClosed

from bench.client_process import ClientProcess, client_process, raise_nofile, readline
from bench.relay_client import Stats


class _Client(ClientProcess):
    def collect(self, expected: int) -> dict:
        """Wait for ``expected`` distinct messages (or 10 s without a new one); their figures."""
        self.popen.stdin.write(f"COLLECT {expected}\n")
        self.popen.stdin.flush()
        return json.loads(readline(self.popen, 120))


def client(directory: pathlib.Path, config: dict):
    """The client process for ``config`` (``url``, ``sockets``: ``[token, channel]`` pairs), ready."""
    return client_process("bench.messaging_client", directory, "client", config, _Client)


class _Received(Stats):
    """The relay bench's figures, counting a message delivered twice once."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()
        self.duplicates = 0

    def message(self, at: float, body: str) -> None:
        seq, sent_at, _ = body.split(" ", 2)
        if seq in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(seq)
            self.record(at, float(sent_at))

    def figures(self) -> dict:
        return dict(self.result(len(self.seen)), duplicates=self.duplicates)


async def _sockets(config: dict) -> None:
    from websockets.asyncio.client import connect

    received = _Received()
    gate = asyncio.Semaphore(100)

    async def open_one(token: str, channel: str):
        async with gate:
            ws = await connect(
                config["url"], compression=None, open_timeout=60, ping_interval=None, close_timeout=2, max_queue=None
            )
            await ws.send(json.dumps({"type": "auth", "token": token}))
            sent_subscribe = False
            while True:
                message = json.loads(await ws.recv())
                kind = message.get("type")
                if kind == "error":
                    raise RuntimeError(f"{channel}: {message}")
                if kind == "ready" and not sent_subscribe:
                    await ws.send(json.dumps({"type": "subscribe", "channel": channel}))
                    sent_subscribe = True
                if kind == "subscribed" and message.get("channel") == channel:
                    return ws

    async def reader(ws):
        loads, now = json.loads, time.time
        with contextlib.suppress(ConnectionClosed):  # a closed connection ends its reader
            async for raw in ws:
                at = now()
                message = loads(raw)
                if message.get("type") == "message.created" and "id" in message:
                    received.message(at, message["data"]["body"])

    opened = await asyncio.gather(*(open_one(token, channel) for token, channel in config["sockets"]))
    readers = [asyncio.create_task(reader(ws)) for ws in opened]
    print(f"READY {len(opened)}", flush=True)
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line.startswith("COLLECT"):
            break
        expected = int(line.split()[1])
        seen, deadline = -1, time.monotonic()
        while len(received.seen) < expected:
            if len(received.seen) != seen:
                seen, deadline = len(received.seen), time.monotonic() + 10
            elif time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # late duplicates
        print(json.dumps(received.figures()), flush=True)
        received = _Received()
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)


def client_main(config_path: str) -> None:
    config = json.loads(pathlib.Path(config_path).read_text())
    raise_nofile(len(config["sockets"]) + 1024)
    asyncio.run(_sockets(config))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client_main(sys.argv[2])
    else:
        sys.exit(
            "usage: python -m bench.messaging_client client CONFIG.json (run the benchmark with "
            "`python -m bench messaging`)"
        )
