"""The OpenAPI schema documents failures too: every operation lists the error answers it can give, each in the
one error shape (memory_admin.api.errors), so clients and schema-driven tests know them."""

from __future__ import annotations

from typing import Any

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
    header of writes, and how the API key is given."""
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
            operation["security"] = [{"bearerApiKey": []}, {"headerApiKey": []}]
    return result
