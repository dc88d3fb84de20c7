"""Idempotency-Key for every write: a retry gets the first response instead of a second effect.

A client sends `Idempotency-Key: <any unique string>` with a POST, PUT or PATCH. The first request with a key
claims it in Redis; when it succeeds, its status, body and headers are kept for the tenant's idempotency
lifetime (IDEMPOTENCY_TTL_SECONDS, 24 h, unless a retention policy says otherwise) and replayed, marked
`Idempotent-Replayed: true`, to every retry with the same key and the same body. The same key with a different
body is a 422; a retry that arrives while the first request is still running is a 409. Keys are scoped to the
tenant and the endpoint.

Only successful responses are kept: a failed request had no effect, so running it again is safe.

Redis is a cache here as everywhere: when it is unreachable, requests run without this protection, and the
writes that matter most (event appends, checkpoint saves) are also protected by unique keys in Postgres.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

import redis
import structlog
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from lifecycle_app.lifetimes import lifetimes_for
from memory_admin.errors import Conflict, Unprocessable, ValidationFailed
from memory_admin.health import redis_client
from tenants_app.authentication import tenant_of

logger = structlog.get_logger("memory.idempotency")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# How long a claim protects a request still running; a request slower than this could run twice.
IN_FLIGHT_SECONDS = 120

Handler = TypeVar("Handler", bound=Callable[..., Response])


@dataclass(frozen=True)
class Claim:
    redis_key: str
    fingerprint: str
    # How long the response is kept: the tenant's idempotency lifetime (its retention policy).
    keep_seconds: int


def _key_from(request: Request) -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable characters.", details={"header": HEADER})
    return key


def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256(request.method.encode() if request.method else b"")
    digest.update(b"\0" + request.path.encode() + b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _redis_key(tenant_id: object, request: Request, key: str) -> str:
    scope = hashlib.sha256(f"{request.method}\0{request.path}\0{key}".encode()).hexdigest()[:40]
    return f"mem:idem:{tenant_id}:{scope}"


def _claim(tenant_id: uuid.UUID, request: Request, key: str) -> Claim | Response | None:
    """Claim the key (returns a Claim), replay a finished request (a Response), or None if Redis is down."""
    claim = Claim(
        _redis_key(tenant_id, request, key),
        _fingerprint(request),
        lifetimes_for(tenant_id).idempotency_seconds,
    )
    client = redis_client()
    pending = json.dumps({"state": "pending", "fp": claim.fingerprint})
    try:
        if client.set(claim.redis_key, pending, nx=True, ex=IN_FLIGHT_SECONDS):
            return claim
        stored = client.get(claim.redis_key)
    except redis.RedisError as exc:
        logger.warning("idempotency_unavailable", error=type(exc).__name__)
        return None
    if stored is None:  # expired between SET and GET: treat as ours
        return _claim(tenant_id, request, key)
    record = json.loads(stored)
    if record["fp"] != claim.fingerprint:
        raise Unprocessable(
            f"This {HEADER} was already used with a different request body.", details={"header": HEADER}
        )
    if record["state"] == "pending":
        raise Conflict(
            f"A request with this {HEADER} is still being processed; retry shortly.",
            details={"header": HEADER, "in_flight": True},
        )
    response = Response(record["data"], status=record["status"], headers=record["headers"])
    response["Idempotent-Replayed"] = "true"
    return response


def _complete(claim: Claim, response: Response, path: str) -> None:
    headers = {name: value for name, value in response.items() if name.lower() != "content-type"}
    record = {
        "state": "done",
        "fp": claim.fingerprint,
        # Lets an erasure find the records about a person's sessions (see compliance_app.scope).
        "path": path,
        "status": response.status_code,
        "data": response.data,
        "headers": headers,
    }
    try:
        redis_client().set(claim.redis_key, json.dumps(record, cls=JSONEncoder), ex=claim.keep_seconds)
    except redis.RedisError as exc:
        logger.warning("idempotency_unavailable", error=type(exc).__name__)


def _release(claim: Claim) -> None:
    try:
        redis_client().delete(claim.redis_key)
    except redis.RedisError as exc:
        logger.warning("idempotency_unavailable", error=type(exc).__name__)


def idempotent(handler: Handler) -> Handler:
    """Decorate a view's post/put/patch so that it honours Idempotency-Key (see the module docstring)."""

    @wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = _key_from(request)
        if key is None:
            return handler(view, request, *args, **kwargs)
        outcome = _claim(tenant_of(request).pk, request, key)
        if isinstance(outcome, Response):
            return outcome
        if outcome is None:
            return handler(view, request, *args, **kwargs)
        try:
            response = handler(view, request, *args, **kwargs)
        except BaseException:
            _release(outcome)
            raise
        if 200 <= response.status_code < 300:
            _complete(outcome, response, request.path)
        else:
            _release(outcome)
        return response

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return cast(Handler, wrapper)
