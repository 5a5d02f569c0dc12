"""Events for clients: appended to a capped Redis stream per channel and published live.

An event is ``{"id", "channel", "type", "at", "data"}`` (docs/jobs-and-events.md).
Every channel (``user:{id}``, ``job:{id}``, later ``conversation:{id}``) has its
own stream, ``{prefix}stream:{channel}``, and its own pub/sub channel,
``{prefix}chan:{channel}``. ``id`` is the id Redis gave the entry in that
channel's stream, so ids only grow within a channel, and a client that
reconnects with the last id it saw on a channel is sent exactly what it
missed. The stream entry and the live message are written by one Lua script:
they are the same event with the same id, byte for byte.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from typing import Any, Protocol

import msgspec
import redis as redis_lib
from redis.typing import StreamRangeResponse

STREAM_MAXLEN = 1000
# A job event written before events stopped carrying signed links (an export's
# ``download_url``): found by its body, without decoding it.
_SIGNED_LINK_IN_JOB_EVENT = re.compile(r'^\{"type":"job\.[a-z_]+".*("download_url"|[?&](sig|X-Amz-Signature)=)')
REDACTED_MARK = "events:signed-links-redacted"
STREAM_TTL_SECONDS = 7 * 24 * 3600
CHANNEL = re.compile(r"^[a-z]+:[A-Za-z0-9_-]{1,64}$")
_STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
_encoder = msgspec.json.Encoder()

# KEYS: stream and pub/sub key of each channel, in pairs. ARGV: maxlen, ttl, the
# event body (JSON without id and channel), then each channel's name.
# The entry stores the body; the live message is the full envelope.
_PUBLISH = """
local ids = {}
local rest = string.sub(ARGV[3], 2)
for i = 1, #KEYS, 2 do
  local id = redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[3])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
  local channel = ARGV[3 + (i + 1) / 2]
  redis.call('PUBLISH', KEYS[i + 1], '{"id":"' .. id .. '","channel":"' .. channel .. '",' .. rest)
  ids[#ids + 1] = id
end
return ids
"""


class InvalidChannel(ValueError):
    pass


class PublishedJob(Protocol):
    """What ``EventBus.publish_job`` reads of a job (``models.jobs.Job``)."""

    @property
    def id(self) -> object: ...

    @property
    def owner_id(self) -> object: ...

    def event_view(self) -> dict[str, Any]: ...


def check_channel(channel: str) -> str:
    if not CHANNEL.match(channel):
        raise InvalidChannel(f"not a channel name: {channel!r}")
    return channel


def parse_event_id(value: str) -> tuple[int, int]:
    """``"1732612345678-3"`` → ``(1732612345678, 3)``; ids compare correctly as tuples."""
    if not isinstance(value, str) or not _STREAM_ID.match(value):
        raise ValueError(f"not an event id: {value!r}")
    ms, seq = value.split("-")
    return int(ms), int(seq)


def format_event_id(value: tuple[int, int]) -> str:
    return f"{value[0]}-{value[1]}"


def envelope(channel: str, event_id: str, body: str) -> str:
    """The event as clients see it, from a stored body (the same bytes the script publishes)."""
    return '{"id":"' + event_id + '","channel":"' + channel + '",' + body[1:]


def envelope_id(message: str) -> str:
    """The id of a published envelope, read without decoding the JSON."""
    # Envelopes always start with {"id":"<id>", (see envelope() and the script).
    return message[7 : message.index('"', 7)]


class EventKeys:
    """Redis key names of the event channels under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._chan = f"{prefix}chan:"

    def stream_key(self, channel: str) -> str:
        return f"{self.prefix}stream:{channel}"

    def channel_key(self, channel: str) -> str:
        return self._chan + channel

    def channel_of(self, key: str) -> str:
        return key[len(self._chan) :]


class EventBus(EventKeys):
    """Publishes events (synchronous Redis client: API processes and workers)."""

    def __init__(
        self, redis: redis_lib.Redis, prefix: str, *, maxlen: int = STREAM_MAXLEN, ttl: int = STREAM_TTL_SECONDS
    ) -> None:
        super().__init__(prefix)
        self.redis = redis
        self.maxlen = maxlen
        self.ttl = ttl
        self._publish = redis.register_script(_PUBLISH)

    def publish(self, channel: str, type_: str, data: dict[str, Any], *, also: tuple[str, ...] = ()) -> str:
        """Append the event to ``channel``'s stream (and each of ``also``) and publish it live.

        Returns its id in ``channel``'s stream.
        """
        channels = [check_channel(channel), *(check_channel(c) for c in also)]
        body = _encoder.encode(
            {"type": type_, "at": datetime.datetime.now(datetime.UTC).isoformat(), "data": data}
        ).decode()
        keys = []
        for name in channels:
            keys += [self.stream_key(name), self.channel_key(name)]
        ids = self._publish(keys=keys, args=[self.maxlen, self.ttl, body, *channels])
        first = ids[0]
        return first.decode() if isinstance(first, bytes) else first

    def publish_job(self, job: PublishedJob, type_: str) -> str | None:
        """Publish a job change to its owner's channel and the job's own channel.

        The event carries ``job.event_view()``: the job's state, never a signed link.
        """
        if job.owner_id is None:
            return None
        return self.publish(f"user:{job.owner_id}", type_, job.event_view(), also=(f"job:{job.id}",))

    def redact_signed_links(self, batch: int = 500) -> int | None:
        """Delete retained job events that carry a signed link; once per Redis (a mark remembers it).

        Events never carry signed links now, but streams keep what older
        versions wrote for days and replay it to anyone who may join the
        channel. Returns how many entries were deleted, or None when this had
        already been done.
        """
        mark = self.prefix + REDACTED_MARK
        if self.redis.exists(mark):
            return None
        deleted = 0
        for key in self.redis.scan_iter(match=self.prefix + "stream:*", count=batch):
            doomed = [eid for eid, body in _stored(self.redis.xrange(key)) if _SIGNED_LINK_IN_JOB_EVENT.search(body)]
            if doomed:
                deleted += self.redis.xdel(key, *doomed)
        self.redis.set(mark, deleted)
        return deleted

    def history(self, channel: str, after: str = "-", count: int = STREAM_MAXLEN) -> list[dict[str, Any]]:
        """Events of ``channel`` after the id ``after`` (all retained ones with ``"-"``), decoded."""
        start = after if after == "-" else f"({after}"
        entries = self.redis.xrange(self.stream_key(check_channel(channel)), start, "+", count=count)
        return [msgspec.json.decode(envelope(channel, eid, body)) for eid, body in _stored(entries)]


def _stored(entries: StreamRangeResponse | None) -> Iterator[tuple[str, str]]:
    """``(id, body)`` of each entry of a channel's stream, as ``_PUBLISH`` wrote them."""
    for eid, fields in entries or ():
        if eid is not None and fields:
            yield _text(eid), _text(fields.get(b"e", b""))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = [
    "REDACTED_MARK",
    "STREAM_MAXLEN",
    "STREAM_TTL_SECONDS",
    "EventBus",
    "EventKeys",
    "InvalidChannel",
    "PublishedJob",
    "check_channel",
    "envelope",
    "envelope_id",
    "format_event_id",
    "parse_event_id",
]
