"""The websocket protocol of ``/v1/realtime``: client messages and close codes.

docs/jobs-and-events.md describes it for client authors; this module is what
the relay enforces. Client messages are JSON objects told apart by ``type``;
a message that does not decode into one of them closes the connection with
``PROTOCOL_ERROR``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

SUBPROTOCOL = "hearth.v1"
MAX_MESSAGE_CHARS = 8192

# Close codes. 1xxx are the standard ones; 4xxx mirror HTTP statuses.
NORMAL = 1000
GOING_AWAY = 1001  # the relay is shutting down: reconnect (with backoff) and resume
INTERNAL_ERROR = 1011  # a bug on our side: reconnect and resume
SERVICE_RESTART = 1012  # sent by uvicorn on shutdown: reconnect (with backoff) and resume
TRY_AGAIN_LATER = 1013  # Redis or the database is unreachable: reconnect with backoff
PROTOCOL_ERROR = 4400  # a message this server does not understand (or a token in the URL)
UNAUTHENTICATED = 4401  # no valid token in time, or the token expired: refresh it, reconnect, resume
SESSION_ENDED = 4403  # the session was revoked (logout, password change, ban): log in again
IDLE_TIMEOUT = 4408  # the client sent nothing for RELAY_IDLE_TIMEOUT seconds
# The session proved only a password and its account has two-factor login on: verify a code first.
MFA_REQUIRED = 4428
TOO_SLOW = 4429  # the client did not read fast enough (send queue full): reconnect and resume

CLOSE_REASONS = {
    GOING_AWAY: "server shutting down",
    INTERNAL_ERROR: "internal error",
    TRY_AGAIN_LATER: "try again later",
    PROTOCOL_ERROR: "protocol error",
    UNAUTHENTICATED: "not authenticated",
    SESSION_ENDED: "session ended",
    MFA_REQUIRED: "second factor required",
    IDLE_TIMEOUT: "idle timeout",
    TOO_SLOW: "too slow; reconnect and resume",
}

EventId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(0|[0-9]{1,20}-[0-9]{1,20})$",
        description="The id of the last event seen on the channel; '0' for everything the channel still holds",
    ),
]
Channel = Annotated[str, msgspec.Meta(min_length=3, max_length=80, examples=["job:5b0f..."])]


class Auth(msgspec.Struct, tag="auth", tag_field="type", kw_only=True):
    """The first message of a connection (and, later, a fresh token before the old one expires)."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    last_event_id: EventId | None = None


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type", kw_only=True):
    channel: Channel
    last_event_id: EventId | None = None


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="type", kw_only=True):
    channel: Channel


class Ping(msgspec.Struct, tag="ping", tag_field="type", kw_only=True):
    pass


ClientMessage = Auth | Subscribe | Unsubscribe | Ping
_decoder = msgspec.json.Decoder(ClientMessage)
_encoder = msgspec.json.Encoder()


class Close(Exception):
    """End the connection with ``code``; ``reason`` reaches the client (at most 123 bytes)."""

    def __init__(self, code: int, reason: str | None = None):
        super().__init__(code, reason)
        self.code = code
        self.reason = (reason or CLOSE_REASONS.get(code, ""))[:120]


def decode(text: str):
    if len(text) > MAX_MESSAGE_CHARS:
        raise Close(PROTOCOL_ERROR, "message too large")
    try:
        return _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise Close(PROTOCOL_ERROR, f"invalid message: {exc}") from None
    except msgspec.DecodeError:
        raise Close(PROTOCOL_ERROR, "messages are JSON objects") from None


def encode(message: dict) -> str:
    return _encoder.encode(message).decode()
