"""One decorator per responder: authentication, permission, rate limit, and typed input.

``@operation(...)`` is the single request pipeline and the single source of the
OpenAPI document: the same schema objects that decode a request describe it.

    class Me:
        @operation("Update my profile", body=ProfilePatch, response=Profile,
                   permission="profile:write")
        def on_patch(self, req, resp):
            patch = req.context.body          # a ProfilePatch instance
            user = req.context.principal      # a Principal

``idempotent=True`` makes the operation honour an ``Idempotency-Key`` header
(``api/idempotency.py``): the responder then runs in one transaction with the
stored response, and a retry with the same key gets that response again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import falcon
import msgspec

from api import idempotency
from api.auth import second_factor_pending
from api.errors import Problem, too_many_requests, unauthorized, validation_error
from api.schemas import PATTERN_MESSAGES
from services.client_address import address_bucket, client_address

if TYPE_CHECKING:
    from api.app import Services

_PATH_IN_MESSAGE = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_PATTERN = re.compile(r"^Expected `str` matching regex (?P<pattern>.*)$", re.S)
# msgspec quotes the pattern as repr() does.
_PATTERN_MESSAGES = {repr(pattern): message for pattern, message in PATTERN_MESSAGES.items()}
T = TypeVar("T")


@dataclass
class Operation:
    summary: str
    body: type | None = None
    query: type | None = None
    response: type | None = None
    # Another body the documented status may answer instead of ``response`` (the document says oneOf).
    alternative: type | None = None
    status: int = 200
    auth: str = "required"  # required | optional | none
    permission: str | None = None
    rate: str | None = "default"  # a bucket in the app's rate table; None: not limited
    errors: tuple[int, ...] = ()
    # Other answers that are not errors, each with what it means: {200: "It already existed"}.
    also: dict[int, str] = field(default_factory=dict)
    # A body that is not JSON, read by the responder itself: its media type(s) in the document.
    raw_body: str | tuple[str, ...] | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None
    response_headers: dict = field(default_factory=dict)
    content_type: str = "application/json"
    # Redis keys (a function of the user id) read in the same round trip as the session state.
    prefetch: object = None
    # Honours an Idempotency-Key header: a retry with the same key replays the stored response.
    idempotent: bool = False
    # Open to a session that still owes its account's second factor (api.auth's ``mfa_pending``).
    before_mfa: bool = False

    def __post_init__(self) -> None:
        if self.idempotent and (self.auth != "required" or self.raw_body is not None):
            # Keys belong to a user, and the stored request is known by its JSON body.
            raise ValueError(f"{self.summary!r}: an idempotent operation needs auth='required' and a JSON body")


class Responder(Protocol):
    """A responder decorated with ``@operation``: it carries its declaration for the OpenAPI document."""

    operation: Operation

    def __call__(self, resource: Any, req: falcon.Request, resp: falcon.Response, **params: Any) -> Any: ...


def operation(summary: str, **spec):
    """Decorate an ``on_<method>`` responder; see the module docstring."""
    op = Operation(summary, **spec)

    def decorate(responder: Callable[..., Any]) -> Responder:
        @functools.wraps(responder)
        def wrapper(resource: Any, req: falcon.Request, resp: falcon.Response, **params: Any) -> Any:
            ctx = req.context
            services = ctx.services
            authenticator = services.authenticator
            claims = None
            if op.auth != "none":
                token = authenticator.bearer(req)
                if token is not None:
                    claims = authenticator.verify(token)
                elif op.auth == "required":
                    raise unauthorized()
            # One Redis round trip: the rate-limit count, the session state, prefetched keys.
            keys = authenticator.keys(claims, op.prefetch) if claims is not None else []
            values = _limit(services, req, resp, op, claims, keys)
            principal = authenticator.principal(claims, values[0]) if claims is not None else None
            ctx.principal = principal
            ctx.prefetched = values[1:]
            if principal is not None and principal.mfa_pending and not op.before_mfa:
                raise second_factor_pending()
            if op.permission is not None:
                if principal is None:  # an optional-auth operation called without a token
                    raise unauthorized()
                principal.require(op.permission)
            if op.query is not None:
                ctx.query = decode_query(req, op.query)
            key = idempotency.requested_key(req) if op.idempotent else None
            data = b""
            if op.body is not None:
                data = json_body(req, services.settings.max_body_bytes)
                ctx.body = decode_json(data, op.body)
            # The documented status is the default; a responder may still answer otherwise
            # (200 for "already there" beside a documented 201).
            resp.status = op.status
            if key is not None:
                return idempotency.respond_once(req, resp, key, data, lambda: responder(resource, req, resp, **params))
            return responder(resource, req, resp, **params)

        decorated = cast(Responder, wrapper)
        decorated.operation = op
        return decorated

    return decorate


def _limit(
    services: Services, req: falcon.Request, resp: falcon.Response, op: Operation, claims, keys: list[str]
) -> list:
    """Count the request against its bucket (429 when over) and return the values of ``keys``."""
    if op.rate is None:
        return services.redis.mget(keys) if keys else []
    limit, window = services.rates[op.rate]
    client = f"u:{claims.user_id}" if claims is not None else f"ip:{address_bucket(client_ip(req, services))}"
    decision = services.limiter.hit(op.rate, client, limit, window, read=keys)
    for name, value in decision.headers().items():
        resp.set_header(name, value)
    if not decision.allowed:
        raise too_many_requests(decision.reset)
    return decision.values


def client_ip(req: falcon.Request, services: Services) -> str:
    """The client's address, trusting ``X-Forwarded-For`` only through configured proxies."""
    return client_address(req.remote_addr, req.get_header("X-Forwarded-For"), services.settings.trusted_proxies)


def _field_errors(exc: msgspec.ValidationError, where: str) -> list[dict]:
    text = str(exc)
    match = _PATH_IN_MESSAGE.match(text)
    message, path = (match.group("message"), match.group("path") or "") if match else (text, "")
    name = path.lstrip(".")
    regex = _PATTERN.match(message)
    if regex and regex.group("pattern") in _PATTERN_MESSAGES:
        # The pattern itself holds control characters: say what it means instead.
        message = _PATTERN_MESSAGES[regex.group("pattern")]
    for pattern in (_MISSING_FIELD, _UNKNOWN_FIELD):
        found = pattern.search(message)
        if found:
            name = f"{name}.{found.group('field')}" if name else found.group("field")
    return [{"field": f"{where}.{name}" if name else where, "message": message}]


def read_body(req: falcon.Request, max_bytes: int) -> bytes:
    """The raw body, at most ``max_bytes`` of it (413 when it is longer, whether or not it said so)."""
    if req.content_length is not None and req.content_length > max_bytes:
        raise Problem(falcon.HTTP_413, "Payload too large", f"Bodies are limited to {max_bytes} bytes.")
    data = req.bounded_stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Problem(falcon.HTTP_413, "Payload too large", f"Bodies are limited to {max_bytes} bytes.")
    return data


def decode_body(req: falcon.Request, schema: type[T], max_bytes: int) -> T:
    """Read at most ``max_bytes`` of JSON and decode it into ``schema`` (400/413/415/422)."""
    return decode_json(json_body(req, max_bytes), schema)


def json_body(req: falcon.Request, max_bytes: int) -> bytes:
    """The JSON body's bytes, at most ``max_bytes`` (413/415); ``{}`` when the request has no body at all."""
    if req.content_length is not None and req.content_length > max_bytes:
        raise Problem(falcon.HTTP_413, "Payload too large", f"Bodies are limited to {max_bytes} bytes.")
    media_type = (req.content_type or "").split(";")[0].strip().lower()
    if not media_type and not req.content_length:
        # No body at all (e.g. a bare logout): an all-optional schema is satisfied,
        # any other names its missing fields (422) rather than blaming a media type.
        return b"{}"
    if media_type != "application/json":
        raise Problem(falcon.HTTP_415, "Unsupported media type", "Send the body as application/json.")
    return read_body(req, max_bytes)


def decode_json(data: bytes, schema: type[T]) -> T:
    """Decode JSON ``data`` into ``schema`` (400 when it is not JSON, 422 naming the fields that do not fit)."""
    try:
        return msgspec.json.decode(data, type=schema)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError:
        raise _malformed() from None
    # Typed decoding stops at the first invalid field, before it has seen the whole
    # body: check the syntax so broken JSON stays a 400, not a 422.
    try:
        untyped = msgspec.json.decode(data)
    except msgspec.DecodeError:
        raise _malformed() from None
    # JSON Schema counts 1.0 as an integer, and so do the clients that follow it: an
    # integral number written with a fraction is taken as that integer.
    try:
        return msgspec.convert(_integral(untyped), schema)
    except msgspec.ValidationError as exc:
        raise validation_error(_field_errors(exc, "body")) from None


def _malformed() -> Problem:
    return Problem(falcon.HTTP_400, "Malformed JSON", "The body is not valid JSON.", slug="malformed-json")


def _integral(value):
    """``value`` with every float that is a whole number (``1.0``, ``2e3``) made an int."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


def decode_query(req: falcon.Request, schema: type[T]) -> T:
    """Convert the query string into ``schema``; repeated keys become lists (422 on failure)."""
    params = dict(req.params)
    list_fields = getattr(schema, "__list_fields__", ())
    for name in list_fields:
        value = params.get(name)
        if isinstance(value, str):
            params[name] = [part for part in value.split(",") if part]
    try:
        return msgspec.convert(params, schema, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_error(_field_errors(exc, "query")) from None
