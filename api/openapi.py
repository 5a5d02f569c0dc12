"""The OpenAPI 3.1 document of a built app, generated from its routes.

Every responder describes itself with ``@operation`` (api/operation.py). This
module walks Falcon's router, so a route added in ``add_routes`` appears in the
document with no change here. Schemas come from the same msgspec types that
decode requests, as JSON Schema 2020-12, which OpenAPI 3.1 uses as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import Any

import falcon
import msgspec

from api import idempotency
from api.schemas import Problem

PROBLEM_JSON = "application/problem+json"
BEARER: dict[str, list[str]] = {"bearerAuth": []}
_FIELD = re.compile(r"\{(\w+)(?::(\w+)[^}]*)?\}")  # {name} or {name:converter(args)}
_CONVERTERS = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "dt": {"type": "string"},
}
_METHOD_ORDER = ("GET", "PUT", "POST", "PATCH", "DELETE")

DESCRIPTION = """\
The Hearth API: JSON over HTTPS.

**Authentication.** Send `Authorization: Bearer <access token>`. `POST /v1/auth/login` returns a \
short-lived access token and a single-use refresh token; `POST /v1/auth/refresh` exchanges the \
refresh token for a new pair.

**Errors** are `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail` and \
`request_id`; a validation failure (422) also lists `errors: [{field, message}]`.

**Rate limits.** Limited operations answer with `RateLimit-Limit`, `RateLimit-Remaining` and \
`RateLimit-Reset` (seconds); over the limit the answer is 429 with `Retry-After` (seconds).

**Idempotency.** Operations that list an `Idempotency-Key` header parameter (every request that \
moves money) take a key chosen by the client, unique per request: a retry with the same key and the \
same body within 24 hours gets the first response again, marked `Idempotent-Replayed: true`, and \
nothing is done twice. The same key with another body is a 422; while the first request is still \
running, a 409.

**Slow work** answers `202 Accepted` with `Location: /v1/jobs/{id}`; poll that job until it finishes.

Every response carries `X-Request-ID`; quote it when reporting a problem."""

_HEADERS = {
    "X-Request-ID": ("string", "Identifies the request in our logs; quote it when reporting a problem."),
    "RateLimit-Limit": ("integer", "Requests allowed in the current window."),
    "RateLimit-Remaining": ("integer", "Requests left in the current window."),
    "RateLimit-Reset": ("integer", "Seconds until the current window ends."),
    "Retry-After": ("integer", "Seconds to wait before trying again."),
    "WWW-Authenticate": ("string", "The authentication scheme to use: `Bearer`."),
    "Location": ("string", "The URL of the created resource."),
    "JobLocation": ("string", "The job doing the work, `/v1/jobs/{id}`; poll it until it finishes."),
    idempotency.REPLAYED_HEADER: (
        "string",
        "`true` when this is the stored response to an earlier request with the same `Idempotency-Key`.",
    ),
}
_RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

_ERRORS = {
    400: "The request is malformed.",
    401: "No valid access token (problem type `unauthorized`).",
    403: "The caller may not do this.",
    404: "No such resource.",
    409: "The request conflicts with the current state.",
    413: "The body is larger than the API accepts.",
    414: "The request line (method, path and query string) is over 8,190 bytes.",
    415: "The body is not `application/json`.",
    422: "Validation failed; `errors` names each offending field.",
    429: "Too many requests; wait `Retry-After` seconds.",
    500: "Unexpected error; the body names the request id and nothing else.",
    503: "A backing service is unreachable; try again after `Retry-After` seconds.",
}


COMPAT_PREFIX = "/auth/v1/"


def routes(app: falcon.App) -> Iterator[tuple[str, str, object, object]]:
    """``(uri_template, method, resource, responder)`` for each responder a resource defines.

    Falcon's own default responders (405, OPTIONS) and the Supabase-compatible API are left out. Falcon has no public
    API that yields responder objects; ``falcon.inspect`` walks these same attributes.
    """

    def walk(nodes):
        for node in nodes:
            # The Supabase-compatible /auth/v1 speaks GoTrue's format, documented in docs/supabase-compat.md.
            if node.resource is not None and not node.uri_template.startswith(COMPAT_PREFIX):
                for method, responder in (node.method_map or {}).items():
                    if not getattr(responder, "__module__", "").startswith("falcon."):
                        yield node.uri_template, method, node.resource, responder
            yield from walk(node.children)

    yield from walk(app._router._roots)


def path_of(uri_template: str) -> str:
    """The OpenAPI path of a Falcon URI template: field converters removed."""
    return _FIELD.sub(r"{\1}", uri_template)


def document(app: falcon.App) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every ``@operation`` responder routed in ``app``.

    A responder without ``.operation`` is left out (the test suite refuses that).
    """
    found = [(t, m, res, r) for t, m, res, r in routes(app) if hasattr(r, "operation")]
    found.sort(key=lambda f: (path_of(f[0]), _METHOD_ORDER.index(f[1]) if f[1] in _METHOD_ORDER else 99))
    types = {Problem} | {
        t
        for *_, r in found
        for t in (r.operation.body, r.operation.query, r.operation.response, r.operation.alternative)
        if t is not None
    }
    ordered = sorted(types, key=repr)
    components, schemas = msgspec.json.schema_components(ordered, ref_template="#/components/schemas/{name}")
    refs = dict(zip(ordered, components, strict=True))

    paths: dict[str, dict[str, dict[str, Any]]] = {}
    tags: set[str] = set()
    ids: set[str] = set()
    for template, method, resource, responder in found:
        item = _operation(template, resource, responder, refs, schemas)
        while item["operationId"] in ids:  # one resource class routed twice with the same suffix
            item["operationId"] += "_"
        ids.add(item["operationId"])
        tags.update(item["tags"])
        paths.setdefault(path_of(template), {})[method.lower()] = item

    return {
        "openapi": "3.1.0",
        "info": {"title": "Hearth API", "version": _version(), "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [BEARER],
        "tags": [{"name": name} for name in sorted(tags)],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "headers": {
                name: {"description": text, "schema": {"type": kind}} for name, (kind, text) in _HEADERS.items()
            },
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "A short-lived access token (EdDSA-signed JWT) from `POST /v1/auth/login`.",
                }
            },
        },
    }


def _operation(template: str, resource, responder, refs: dict, schemas: dict) -> dict:
    op = responder.operation
    name = responder.__name__.removeprefix("on_")
    item = {
        "operationId": f"{type(resource).__name__}_{name}",
        "summary": op.summary,
        "tags": list(op.tags) or ["default"],
    }
    if op.description:
        item["description"] = op.description
    parameters = [
        {"name": field, "in": "path", "required": True, "schema": dict(_CONVERTERS.get(converter, {"type": "string"}))}
        for field, converter in _FIELD.findall(template)
    ]
    if op.query is not None:
        parameters += _query_parameters(_component(refs[op.query], schemas))
    if op.idempotent:
        parameters.append(_IDEMPOTENCY_KEY)
    if parameters:
        item["parameters"] = parameters
    if op.body is not None:
        # No body at all satisfies a schema whose fields are all optional (see decode_body).
        body = _component(refs[op.body], schemas)
        needed = body.get("type") != "object" or bool(body.get("required"))
        item["requestBody"] = {"required": needed, "content": {"application/json": {"schema": refs[op.body]}}}
    elif op.raw_body is not None:
        raw = {"type": "string", "format": "binary"}
        types = (op.raw_body,) if isinstance(op.raw_body, str) else op.raw_body
        item["requestBody"] = {"required": True, "content": {media_type: {"schema": raw} for media_type in types}}
    item["responses"] = _responses(op, refs, path_parameters=bool(_FIELD.search(template)))
    if op.auth == "none":
        item["security"] = []
    elif op.auth == "optional":
        item["security"] = [{}, BEARER]
    if op.permission:
        item["x-permission"] = op.permission
    if op.rate:
        item["x-rate-limit"] = op.rate
    return item


def _component(schema: dict, schemas: dict) -> dict:
    """``schema`` itself, seen through a ``$ref`` to a component."""
    return schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema


def _query_parameters(schema: dict) -> list[dict]:
    required = set(schema.get("required", ()))
    parameters = []
    for name, declared in schema.get("properties", {}).items():
        prop = _not_null(declared)
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in prop:
            parameter["description"] = prop["description"]
        parameters.append(parameter)
    return parameters


def _not_null(prop: dict) -> dict:
    """``X | None`` as ``X``: a query string cannot carry null, only leave the key out."""
    options = [s for s in prop.get("anyOf", ()) if s != {"type": "null"}]
    if len(options) != 1:
        return prop
    merged = {**options[0], **{k: v for k, v in prop.items() if k != "anyOf"}}
    if merged.get("default", ...) is None:
        del merged["default"]
    return merged


def _responses(op, refs: dict, path_parameters: bool) -> dict:
    common = ["X-Request-ID", *(_RATE_HEADERS if op.rate else ())]
    # What a replay can answer: the responder's own answers, its errors included.
    replayed = [idempotency.REPLAYED_HEADER] if op.idempotent else []
    responses = {
        str(status): _success(op, status, description, refs, common + replayed)
        for status, description in sorted({op.status: _reason(op.status), **op.also}.items())
    }

    statuses = set(op.errors) | {500}
    if op.auth != "none":
        statuses.add(401)
        if not op.before_mfa:
            statuses.add(403)  # a session that still owes its account's second factor
    if op.permission:
        statuses.add(403)
    if op.body is not None:
        statuses |= {400, 413, 415, 422}
    if op.query is not None:
        statuses |= {414, 422}
    if path_parameters:
        # The router answers 404 when a path parameter does not convert (an id that is not a UUID).
        statuses |= {404, 414}
    if op.rate:
        statuses.add(429)
    if op.idempotent:
        statuses |= {409, 422}

    for status in sorted(statuses):
        extra = {401: ["WWW-Authenticate"], 429: ["Retry-After"], 503: ["Retry-After"]}.get(status, [])
        if status in op.errors and op.idempotent and idempotency.kept_status(status):
            extra = extra + replayed
        description = _ERRORS.get(status) or _reason(status)
        if status == 403 and op.permission:
            description = f"The caller lacks the `{op.permission}` permission, or may not do this."
        if status == 403 and op.auth != "none" and not op.before_mfa:
            description = _with_pending_second_factor(description, alone=not op.permission and 403 not in op.errors)
        if op.idempotent and status in _IDEMPOTENCY_ERRORS:
            other = status in op.errors or (status == 422 and op.body is not None)
            text = _IDEMPOTENCY_ERRORS[status]
            description = f"{description.rstrip('.')}; or {text}" if other else text[0].upper() + text[1:]
        responses[str(status)] = {
            "description": description,
            "headers": _headers(common + extra),
            "content": {PROBLEM_JSON: {"schema": refs[Problem]}},
        }
    return responses


_PENDING_SECOND_FACTOR = (
    "the session proved only a password and the account has two-factor login on "
    "(problem type `mfa-required`: verify a code first)"
)


def _with_pending_second_factor(description: str, *, alone: bool) -> str:
    if alone:
        return _PENDING_SECOND_FACTOR[0].upper() + _PENDING_SECOND_FACTOR[1:] + "."
    return f"{description.rstrip('.')}; or {_PENDING_SECOND_FACTOR}."


_IDEMPOTENCY_KEY = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes retrying safe: 1 to 255 printable ASCII characters, unique per request (a UUID). The first "
        "request with a key runs and its response is kept for 24 hours; the same request again (same "
        "endpoint, path, query and body, by the same user) gets that response back with "
        "`Idempotent-Replayed: true` and does nothing again. Another request with the key is a 422; "
        "while the first is still running, a 409. Errors the operation answers on purpose (404, 409) "
        "are kept and replayed; a body that does not validate (422), a 429 or a 5xx is not, so the "
        "key can be used again."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": idempotency.KEY_PATTERN},
}
_IDEMPOTENCY_ERRORS = {
    409: "a request with the same `Idempotency-Key` is still in progress (problem type "
    "`idempotency-key-in-flight`): retry once it has finished.",
    422: "the `Idempotency-Key` is malformed (`errors` names `header.Idempotency-Key`), or it was "
    "first used for another request (problem type `idempotency-key-mismatch`).",
}


def _success(op, status: int, description: str, refs: dict, common: list[str]) -> dict:
    success: dict[str, Any] = {"description": description, "headers": _headers(common)}
    if status in (201, 202):
        success["headers"]["Location"] = {
            "$ref": "#/components/headers/" + ("Location" if status == 201 else "JobLocation")
        }
    for name, value in op.response_headers.items():
        success["headers"][name] = (
            value if isinstance(value, dict) else {"description": value, "schema": {"type": "string"}}
        )
    if status not in (204, 304):
        fallback = {"type": "object"} if "json" in op.content_type else {"type": "string"}
        schema = refs.get(op.response, fallback)
        if op.alternative is not None and status == op.status:
            schema = {"oneOf": [schema, refs[op.alternative]]}
        success["content"] = {op.content_type: {"schema": schema}}
    return success


def _headers(names: Iterable[str]) -> dict[str, dict[str, str]]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _reason(status: int) -> str:
    status_line: str = falcon.code_to_http_status(status)  # "404 Not Found"
    return status_line[4:]


def _version() -> str:
    try:
        return metadata.version("hearth")
    except metadata.PackageNotFoundError:
        return "0.0.0"
