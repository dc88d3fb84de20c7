"""Idempotency-Key for every write: a retry gets the first response instead of a second effect.

A client sends `Idempotency-Key: <any unique string>` with a POST, PUT, PATCH or DELETE. The first request with a key
claims it in Redis; when it succeeds, its status, body and headers are kept for the tenant's idempotency
lifetime (IDEMPOTENCY_TTL_SECONDS, 24 h, unless a retention policy says otherwise) and replayed, marked
`Idempotent-Replayed: true`, to every retry with the same key and the same body. The same key with a different
body is a 422; a retry that arrives while the first request is still running is a 409 with `Retry-After: 1`
(whichever lane the retry lands in: the hot lane leaves a key it cannot claim to Django). Keys are scoped to
the tenant and the endpoint.

Only successful responses are kept: a failed request had no effect, so running it again is safe.

An erasure replaces the records of the erased person's requests with a marker that holds nothing of them, for
the rest of the records' lifetime: a retry is then a 410 (Erased) instead of a replay of their data, or a
second run that would store again what was just erased (compliance_app.scope.purge_redis).

Redis is a cache here as everywhere: when it is unreachable, requests run without this protection, and the
writes that matter most (event appends, checkpoint saves, memory creates, erasure and export requests) are also
protected by unique keys in Postgres, which a retry finds after the record here expired or was lost.
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
from memory_admin.errors import Conflict, Erased, Unprocessable, ValidationFailed
from memory_admin.redis_wire import Batch
from tenants_app.authentication import tenant_of

logger = structlog.get_logger("memory.idempotency")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# How long a claim protects a request still running; a request slower than this could run twice.
IN_FLIGHT_SECONDS = 120
# What an erasure leaves of a record of the erased person's request (see `mark_erased`).
ERASED_RECORD = json.dumps({"state": "erased"})

Handler = TypeVar("Handler", bound=Callable[..., Response])


class InFlight(Conflict):
    """A request with the same key is still running: the same request, sent again shortly with the same key, gets
    its answer. `Retry-After: 1` says when (a client that gave up and sent it under a new key would write twice)."""

    retry_after = 1


@dataclass(frozen=True)
class Claim:
    redis_key: str
    fingerprint: str
    # How long the response is kept: the tenant's idempotency lifetime (its retention policy).
    keep_seconds: int


def checked_key(raw: str | None) -> str | None:
    """The Idempotency-Key header's value, stripped; None without one; ValidationFailed (400) when unusable."""
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable characters.", details={"header": HEADER})
    return key


def stored_key(method: str, path: str, raw: str | None) -> str | None:
    """The key as stored with what a write appended (events), scoped like the Redis record: method and path."""
    if not raw:
        return None
    return hashlib.sha256(f"{method} {path} {raw}".encode()).hexdigest()


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256(method.encode())
    digest.update(b"\0" + path.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


def redis_key(tenant_id: object, method: str, path: str, key: str) -> str:
    scope = hashlib.sha256(f"{method}\0{path}\0{key}".encode()).hexdigest()[:40]
    return f"mem:idem:{tenant_id}:{scope}"


def new_claim(tenant_id: uuid.UUID, method: str, path: str, key: str, body: bytes) -> Claim:
    return Claim(
        redis_key(tenant_id, method, path, key),
        fingerprint(method, path, body),
        lifetimes_for(tenant_id).idempotency_seconds,
    )


def take(claim: Claim) -> bool:
    """Record the claim as in flight unless the key holds a record already; True when this request now owns
    the key. Raises redis.RedisError (the caller runs unprotected, as when Redis is away)."""
    pending = json.dumps({"state": "pending", "fp": claim.fingerprint})
    (won,) = Batch().set(claim.redis_key, pending, ex=IN_FLIGHT_SECONDS, nx=True).execute()
    return bool(won)


def complete(claim: Claim, *, path: str, status: int, data: Any, headers: dict[str, str]) -> None:
    """Keep a successful response for the retries of its key."""
    record = {
        "state": "done",
        "fp": claim.fingerprint,
        # Lets an erasure find the records about a person's sessions (see compliance_app.scope).
        "path": path,
        "status": status,
        "data": data,
        "headers": {name: value for name, value in headers.items() if name.lower() != "content-type"},
    }
    try:
        Batch().set(claim.redis_key, json.dumps(record, cls=JSONEncoder), ex=claim.keep_seconds).execute()
    except redis.RedisError as exc:
        logger.warning("idempotency_unavailable", error=type(exc).__name__)


def mark_erased(keys: list[str]) -> int:
    """Replace these records, those still there, by the erased marker, each for the rest of its lifetime;
    returns how many were replaced. Raises redis.RedisError."""
    batch = Batch()
    for key in keys:
        batch.command("SET", key, ERASED_RECORD, "XX", "KEEPTTL")
    return sum(reply is not None for reply in batch.execute())


def release(claim: Claim) -> None:
    """Free the key of a request that failed (it had no effect: a retry may run it)."""
    try:
        Batch().delete(claim.redis_key).execute()
    except redis.RedisError as exc:
        logger.warning("idempotency_unavailable", error=type(exc).__name__)


def _claim(tenant_id: uuid.UUID, request: Request, key: str) -> Claim | Response | None:
    """Claim the key (returns a Claim), replay a finished request (a Response), or None if Redis is down."""
    claim = new_claim(tenant_id, request.method or "", request.path, key, request.body)
    try:
        if take(claim):
            return claim
        (stored,) = Batch().get(claim.redis_key).execute()
    except redis.RedisError as exc:
        logger.warning("idempotency_unavailable", error=type(exc).__name__)
        return None
    if stored is None:  # expired between SET and GET: treat as ours
        return _claim(tenant_id, request, key)
    record = json.loads(stored)
    if record["state"] == "erased":
        raise Erased(
            f"This {HEADER}'s request concerned a person who was erased since; it is not run again.",
            details={"header": HEADER},
        )
    if record["fp"] != claim.fingerprint:
        raise Unprocessable(
            f"This {HEADER} was already used with a different request body.", details={"header": HEADER}
        )
    if record["state"] == "pending":
        raise InFlight(
            f"A request with this {HEADER} is still being processed; retry shortly.",
            details={"header": HEADER, "in_flight": True},
        )
    response = Response(record["data"], status=record["status"], headers=record["headers"])
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(handler: Handler) -> Handler:
    """Decorate a view's post/put/patch/delete so that it honours Idempotency-Key (see the module docstring)."""

    @wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = checked_key(request.headers.get(HEADER))
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
            release(outcome)
            raise
        if 200 <= response.status_code < 300:
            complete(
                outcome,
                path=request.path,
                status=response.status_code,
                data=response.data,
                headers=dict(response.items()),
            )
        else:
            release(outcome)
        return response

    wrapper.idempotent = True  # type: ignore[attr-defined]
    return cast(Handler, wrapper)
