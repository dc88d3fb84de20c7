"""Domain errors raised by services and selectors; one handler turns each into the API's error body.

Each carries an HTTP status and a stable machine-readable `code`; `details` holds what a client needs to
recover (for a conflict, the current version).
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class ValidationFailed(ServiceError):
    status = 400
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Erased(ServiceError):
    status = 410
    code = "erased"


class PreconditionFailed(ServiceError):
    status = 412
    code = "precondition_failed"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class Unprocessable(ServiceError):
    status = 422
    code = "unprocessable"


class IntegrityFailure(ServiceError):
    """Stored data failed verification (a checksum chain broke): the server refuses to return it as good."""

    status = 409
    code = "integrity_failure"


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details={"retry_after": retry_after, **(details or {})})
        self.retry_after = retry_after


class Unavailable(ServiceError):
    status = 503
    code = "unavailable"
    # Seconds a client should wait before retrying (the Retry-After header every 503 carries).
    retry_after = 1


class Archived(ServiceError):
    """The rows needed for this answer were moved to the archive (lifecycle_app); they are read from there."""

    status = 410
    code = "archived"
