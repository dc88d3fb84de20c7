"""The one JSON error shape of the API, and the handler that maps every failure onto it.

    {"error": {"status": 409, "code": "conflict", "message": "...", "details": {...}, "request_id": "..."}}

`code` is stable and machine-readable; `message` is for people; `details` carries what a client needs to
recover (field errors, the current version, seconds to wait).
"""

from __future__ import annotations

import math
from typing import Any

import psycopg
import redis
import structlog
from django import db
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from memory_admin.codec import response_json
from memory_admin.errors import ServiceError

logger = structlog.get_logger("memory.api")

_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "malformed_request",
    drf.AuthenticationFailed: "unauthenticated",
    drf.NotAuthenticated: "unauthenticated",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
    drf.ValidationError: "invalid",
}


def error_body(
    status: int, code: str, message: str, details: dict[str, Any] | None = None, request: Any = None
) -> dict[str, Any]:
    return {
        "error": {
            "status": status,
            "code": code,
            "message": message,
            "details": details or {},
            "request_id": getattr(request, "request_id", None),
        }
    }


def json_error(
    request: HttpRequest | None, status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> HttpResponse:
    """The error body for answers made outside DRF (middleware, Django's 404 and 500 handlers), written as DRF's
    renderer writes the rest."""
    body = response_json(error_body(status, code, message, details, request))
    return HttpResponse(body, status=status, content_type="application/json")


def _drf_message_and_details(exc: drf.APIException) -> tuple[str, dict[str, Any]]:
    if isinstance(exc, drf.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        return "The request did not validate.", {"fields": _plain(fields)}
    return str(exc.detail), {}


def _plain(value: Any) -> Any:
    """DRF's ErrorDetail strings and nested containers as plain JSON values."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return str(value)


# PostgreSQL's refusal of a value past one of its limits (SQLSTATE class 54: an index entry's size, a statement
# too deep): the same request fails the same way again, so it is the client's to change, not an outage to wait out.
BEYOND_DATABASE_LIMIT = (400, "invalid", "A value of the request is beyond what the database can store.")


def beyond_database_limit(exc: BaseException) -> bool:
    cause = exc.__cause__
    limit = isinstance(cause, psycopg.Error) and (cause.sqlstate or "").startswith("54")
    return isinstance(exc, db.OperationalError) and limit


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes the one error body."""
    request = context.get("request")
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceError):
        status, code, message, details = exc.status, exc.code, exc.message, exc.details
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
    elif isinstance(exc, Http404):
        status, code, message, details = 404, "not_found", "Not found.", {}
    elif isinstance(exc, DjangoPermissionDenied):
        status, code, message, details = 403, "forbidden", "You do not have permission to do this.", {}
    elif isinstance(exc, RequestDataTooBig):
        status, code, message, details = 413, "payload_too_large", "The request body is too large.", {}
    elif beyond_database_limit(exc):
        logger.warning("database_limit_exceeded", sqlstate=getattr(exc.__cause__, "sqlstate", None))
        status, code, message = BEYOND_DATABASE_LIMIT
        details = {}
    elif isinstance(exc, (db.OperationalError, db.InterfaceError, redis.ConnectionError, redis.TimeoutError)):
        # A layer is down or restarting: the client should retry later; nothing was half-written (the
        # transaction rolled back), and the broken connection is dropped at the end of this request.
        logger.warning("layer_unavailable", error=type(exc).__name__)
        status, code, message, details = 503, "unavailable", "A storage layer is unavailable; retry shortly.", {}
        headers["Retry-After"] = "1"
    elif isinstance(exc, SuspiciousOperation):
        status, code, message, details = 400, "bad_request", "The request was rejected as malformed.", {}
    elif isinstance(exc, drf.APIException):
        status = exc.status_code
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "bad_request")
        message, details = _drf_message_and_details(exc)
        wait = getattr(exc, "wait", None)
        if isinstance(exc, drf.Throttled) and wait is not None:
            seconds = max(1, math.ceil(wait))
            headers["Retry-After"] = str(seconds)
            details = {"retry_after": seconds}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    else:
        return None  # Unexpected: Django's 500 handling takes over (and is logged there).
    set_rollback()
    return Response(error_body(status, code, message, details, request), status=status, headers=headers)


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(request, 404, "not_found", "No such endpoint.")


def api_server_error(request: HttpRequest) -> HttpResponse:
    logger.error("unhandled_error", path_prefix=request.path.split("/")[1:3])
    return json_error(request, 500, "server_error", "An unexpected error occurred; it has been logged.")
