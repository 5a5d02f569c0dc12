"""Events for clients: published on Redis pub/sub and kept in a capped per-user stream.

An event is ``{"id", "type", "at", "data"}``. ``id`` is the id Redis gave the
entry in the user's stream (``user:{id}``), so a client that reconnects with the
last id it saw can be sent exactly what it missed. Channels other than a
user's (``job:{id}``, ``conversation:{id}``) carry the same envelopes.
"""
from __future__ import annotations

import datetime

import msgspec

STREAM_MAXLEN = 1000
STREAM_TTL_SECONDS = 7 * 24 * 3600
_encoder = msgspec.json.Encoder()

# Stream ids and publishes happen in one script so the live event and the
# replayable one are the same, with the same id.
_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local envelope = string.gsub(ARGV[2], '^{', '{"id":"' .. id .. '",', 1)
for i = 2, #KEYS do redis.call('PUBLISH', KEYS[i], envelope) end
return id
"""


class EventBus:
    def __init__(self, redis, prefix: str):
        self.redis = redis
        self.prefix = prefix
        self._publish = redis.register_script(_PUBLISH)

    def stream_key(self, channel: str) -> str:
        return f"{self.prefix}stream:{channel}"

    def channel_key(self, channel: str) -> str:
        return f"{self.prefix}chan:{channel}"

    def publish(self, channel: str, type_: str, data: dict, *, also: tuple[str, ...] = ()) -> str:
        """Append the event to ``channel``'s stream and publish it there and on ``also``; returns its id."""
        body = _encoder.encode({
            "type": type_,
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "channel": channel,
            "data": data,
        }).decode()
        keys = [self.stream_key(channel), self.channel_key(channel), *(self.channel_key(c) for c in also)]
        event_id = self._publish(keys=keys, args=[STREAM_MAXLEN, body, STREAM_TTL_SECONDS])
        return event_id.decode() if isinstance(event_id, bytes) else event_id
