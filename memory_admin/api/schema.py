"""The OpenAPI schema documents failures too: every operation lists the error answers it can give, each in the
one error shape (memory_admin.api.errors), so clients and schema-driven tests know them. It documents the
response headers clients rely on as well: those every answer carries or may carry (`document_headers`), and a
view's own (`etag_header`, `location_header`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "status": {"type": "integer", "description": "The HTTP status, repeated."},
                "code": {"type": "string", "description": "Stable and machine-readable, e.g. `not_found`."},
                "message": {"type": "string", "description": "For people."},
                "details": {
                    "type": "object",
                    "additionalProperties": True,
                    "description": "What a client needs to recover: field errors, the current version, wait time.",
                },
                "request_id": {"type": "string", "nullable": True},
            },
            "required": ["status", "code", "message", "details", "request_id"],
        }
    },
    "required": ["error"],
}

# Every operation can be refused for these reasons.
_ANY = {
    400: "Malformed request: bad JSON, a wrong type, an unknown body field, a malformed query parameter.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key may not do this.",
    404: "Nothing of the caller's tenant at this path.",
    406: "The Accept header asks for something other than JSON.",
    410: "The session was archived (its history is in cold storage), or what the request concerns was erased.",
    429: "Too many requests for this API key; Retry-After says when to come back.",
    503: "A layer is unavailable (a Postgres or Redis outage); Retry-After says when to retry.",
}
# Writes can also be refused for these.
_WRITES = {
    409: "A conflict: a stale expected version, a duplicate, or a request with this Idempotency-Key still running.",
    412: "If-Match names a version that is no longer current; the body carries the current one.",
    413: "The request body is larger than the limit.",
    415: "The body is not JSON.",
    422: "Well-formed but refused: e.g. the same Idempotency-Key with a different body, a checksum that disagrees.",
}


# Every write takes one (memory_admin.api.idempotency).
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Makes a retry safe: the same key with the same body returns the first response without a "
    "second effect; with another body it is a 422; while the first is still running, a 409; once the person "
    "it concerned was erased, a 410.",
}
# Both ways of giving the API key (tenants_app.authentication).
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerApiKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer mk_…"},
    "headerApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the error answers and the Error component, the Idempotency-Key
    header of writes, that a write's body is required, and how the API key is given."""
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            writes = method in ("post", "put", "patch", "delete")
            statuses = {**_ANY, **(_WRITES if writes else {})}
            responses = operation.setdefault("responses", {})
            for status, description in statuses.items():
                responses.setdefault(str(status), {"description": description})
            for status, documented in responses.items():
                if status[:1] in ("4", "5"):  # a view's own refusals too: the body is always the one error shape
                    documented["content"] = reference
            if writes:
                operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY_PARAMETER)
            if "requestBody" in operation and method != "delete":
                # drf-spectacular makes a body whose fields are all optional optional, but the API refuses a
                # write without one (AgentAPIView: 400); a generated client must not leave it out.
                operation["requestBody"]["required"] = True
            operation["security"] = [{"bearerApiKey": []}, {"headerApiKey": []}]
    return result


# --- Response headers -------------------------------------------------------------------------------------


def _header(description: str, schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


# The headers every operation's answers carry or may carry, as components (`document_headers` refers to them).
SHARED_HEADERS: dict[str, dict[str, Any]] = {
    # Every API answer, from either lane and from the middleware's refusals (memory_admin.observability).
    "X-Request-ID": _header(
        "This request's id in the service's logs (the error body's `request_id`): the X-Request-ID the client "
        "sent when well-formed, else a new one.",
        {"type": "string"},
        required=True,
    ),
    # Counted by the authentication step (memory_admin.api.throttling): absent while Redis, which counts, is
    # unreachable.
    "X-RateLimit-Limit": _header(
        "Requests this API key may make per minute. Sent while Redis, which counts them, is reachable.",
        {"type": "integer", "minimum": 1},
        required=False,
    ),
    "X-RateLimit-Remaining": _header(
        "Requests left to this API key in the current minute. Sent with X-RateLimit-Limit.",
        {"type": "integer", "minimum": 0},
        required=False,
    ),
    # Every 429 and 503 (memory_admin.api.errors, and the hot lane's).
    "Retry-After": _header("Seconds to wait before trying again.", {"type": "integer", "minimum": 1}, required=True),
    # A write's 409 when a request with its Idempotency-Key is still running (idempotency.InFlight).
    "Retry-After-In-Flight": _header(
        "When a request with this Idempotency-Key is still running (`details.in_flight`): seconds to wait before "
        "sending it again with the same key, which then gets its answer.",
        {"type": "integer", "minimum": 1},
        required=False,
    ),
    # memory_admin.api.idempotency
    "Idempotent-Replayed": _header(
        "`true` when this is the stored answer to an earlier request with the same Idempotency-Key and body: "
        "nothing was done again.",
        {"type": "string", "enum": ["true"]},
        required=False,
    ),
}
_RATE_LIMIT = ("X-RateLimit-Limit", "X-RateLimit-Remaining")
# Refused before the key was counted: no key or an unknown one, an Accept the API cannot serve, a body over
# the limit (refused by the middleware).
_NOT_COUNTED = {"401", "403", "406", "413"}


def document_headers(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (after `document_errors`): the headers of every operation's answers.
    X-Request-ID on all; the rate-limit headers once the key was counted; Retry-After on 429 and 503, and on a
    write's 409 for a key still in flight; Idempotent-Replayed on the successes of a write. A view documents its
    own (ETag, Location) with `etag_header` and `location_header`."""
    result.setdefault("components", {}).setdefault("headers", {}).update(SHARED_HEADERS)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            keyed = any(parameter.get("name") == IDEMPOTENCY_KEY_PARAMETER["name"] for parameter in parameters)
            for status, response in operation.get("responses", {}).items():
                # header name -> its component
                names = {"X-Request-ID": "X-Request-ID"}
                if status not in _NOT_COUNTED:
                    names.update({name: name for name in _RATE_LIMIT})
                if status in ("429", "503"):
                    names["Retry-After"] = "Retry-After"
                if keyed and status == "409":
                    names["Retry-After"] = "Retry-After-In-Flight"
                if keyed and status.startswith("2"):
                    names["Idempotent-Replayed"] = "Idempotent-Replayed"
                headers = response.setdefault("headers", {})
                headers.update(
                    {name: {"$ref": f"#/components/headers/{component}"} for name, component in names.items()}
                )
    return result


def etag_header(*statuses: int) -> OpenApiParameter:
    """For a view's `extend_schema(parameters=...)`: its answers with these statuses carry the resource's ETag."""
    return OpenApiParameter(
        "ETag",
        {"type": "string", "pattern": '^"[0-9]+"$'},
        OpenApiParameter.HEADER,
        required=True,
        response=list(statuses),
        description='The version of the resource as a strong tag, e.g. "3": send it in If-Match to make a '
        "change conditional on it (a 412 with the current version when it is stale).",
    )


def location_header(description: str, *statuses: int) -> OpenApiParameter:
    """For a view's `extend_schema(parameters=...)`: its answers with these statuses say where the resource is."""
    return OpenApiParameter(
        "Location", str, OpenApiParameter.HEADER, required=True, response=list(statuses), description=description
    )
